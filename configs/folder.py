"""Your own images: a folder with one subfolder per class (e.g. paintings sorted by style),
or images directly in the folder for an unconditional GAN. 64x64 RGB, class-conditional DCGAN.
For a small folder (100-5,000 pictures, e.g. an artist's work) use configs/art.py instead: a
ResNet GAN with DiffAugment and LeCam, made for few images.

  python train.py --config configs/folder.py --config.data.source=folder:/path/to/paintings
  python sample.py --workdir runs/folder --label impressionism --seeds 0-15 --grid out.png

JPEG, PNG, GIF, WebP, BMP, TIFF and other raster formats (never PostScript/EPS or PDF); images
above data.max_image_pixels (8192x8192) and junk files are skipped and reported once at start.
Images are centre-cropped to a square (data.fit=pad: padded with white instead) and resized to 64x64, held on the device up to data.device_cache_mb (512 MB,
about 40,000 images at 64x64x3), else in host memory up to data.host_cache_mb (4,096 MB), else
left on disk and decoded a batch at a time.
Expected: at most 1.4 s per step on a 2-core CPU (measured with another job on the machine), so
20,000 steps take most of a day there; use a GPU or TPU (not measured here: no accelerator).
Smoke run: --config.train.num_steps=10 --config.model.g_width=8 --config.model.d_width=8
"""
from configs import digits


def get_config():
    config = digits.get_config()
    config.data.source = "folder:"  # set --config.data.source=folder:/path/to/images
    config.data.resolution = 64
    config.data.channels = 3
    config.data.random_flip = True  # paintings may be mirrored; set False for text or faces
    config.model.latent_dim = 128
    config.model.g_width = 64
    config.model.d_width = 64
    config.train.num_steps = 20_000
    config.train.augment = ""  # the digits' DiffAugment is for their 1,797 images
    config.train.steps_per_call = 1  # 10-100 on GPUs and TPUs
    config.train.sample_every_steps = 1000
    config.checkpoint.every_steps = 1000
    return config
