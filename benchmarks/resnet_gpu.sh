#!/bin/bash
# The resnet family's training step against its PyTorch twin on one GPU, float32 and bfloat16:
# StudioGAN's CIFAR-10 SNGAN (configs/cifar10_sngan.py, 32 px, 5 D updates per step) and the
# artist's recipe (configs/art.py, 64 px, DiffAugment + LeCam; the folder is not read: the
# benchmark trains on a synthetic batch). Bare jitted step only (--no-runner), both timed in the
# same process, on the same GPU.
#
#   bash benchmarks/resnet_gpu.sh [OUT_DIR]      # ~5 minutes on an H100/H200
set -u
out=${1:-/tmp/resnet_gpu}
mkdir -p "$out"
export XLA_PYTHON_CLIENT_MEM_FRACTION=0.5   # leave half of the GPU to PyTorch in the same process
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import jax, flax, optax, torch; print('jax', jax.__version__, 'flax', flax.__version__,
'optax', optax.__version__, 'torch', torch.__version__, jax.devices())"
run() {
  name=$1; shift
  timeout 200 python3 benchmarks/step_throughput.py --no-runner --steps 6 "$@" 2>&1 \
    | grep -v -i "warning" | tee "$out/$name.txt"
}
run sngan_fp32 --config configs/cifar10_sngan.py
run sngan_bf16 --config configs/cifar10_sngan.py --config.model.dtype=bfloat16
run art64_fp32 --config configs/art.py --config.data.source=folder:/tmp
run art64_bf16 --config configs/art.py --config.data.source=folder:/tmp --config.model.dtype=bfloat16
