"""jaxgan's StyleGAN2-ADA pipeline (train.augment="ada"/"bgc") against the official PyTorch
`AugmentPipe`, operation by operation, on the official code's own random numbers.

  git clone https://github.com/brownvc/R3GAN /tmp/R3GAN     # or NVlabs/stylegan2-ada-pytorch
  python benchmarks/augment_parity.py --official /tmp/R3GAN  # needs torch and scipy

The official `AugmentPipe.forward` draws its numbers with torch.rand / torch.randn in a fixed
order; they are recorded as it runs and handed to `augment_pipe.apply` in jaxgan's layout, so both
sides transform the same images with the same parameters. Compared:
- the geometric operations' inverse matrix G_inv (output pixel -> input pixel about the image
  centre), read back from the matrix the official code hands to `affine_grid` (it has by then
  been conjugated by the padding, the 2x upsampling and the [-1, 1] grid scale, all of which are
  undone here in float64). The pixels are not compared: the official code resamples through a
  2x sym6-filtered supersampling that jaxgan leaves out (augment_pipe's docstring says why);
- the colour operations and cutout, pixel by pixel (with the geometric operations off, the
  official code leaves the geometry alone, so both sides compute the same function).

The official code is not copied into jaxgan (NVIDIA's source-code licence): `--official` points
at a checkout of it. Prints one line per case: the largest difference and its bound.
"""
from __future__ import annotations

import argparse
import contextlib
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

EPS32 = float(np.finfo(np.float32).eps)
# (name, operations switched on): each operation alone, the two pipelines, and the colour
# operations with cutout together (the geometric ones make the official pixels differ).
GEOMETRIC_CASES = {name: {name: 1.0} for name in ("xflip", "rotate90", "xint", "scale",
                                                  "rotate", "aniso", "xfrac")}
COLOUR_CASES = {name: {name: 1.0} for name in ("brightness", "contrast", "lumaflip", "hue",
                                               "saturation", "cutout")}
COLOUR_CASES["colour+cutout (ada's)"] = dict(brightness=0.5, contrast=0.5, lumaflip=0.5, hue=0.5,
                                             saturation=0.5, cutout=1.0)


def load_official(path: str):
    """The official `training.augment` module from a checkout (its torch_utils beside it)."""
    sys.path.insert(0, str(pathlib.Path(path).resolve()))
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        # The official conv2d_gradfix imports pkg_resources.parse_version, which setuptools no
        # longer ships by default; packaging's is the same function.
        import types
        from packaging.version import parse
        sys.modules["pkg_resources"] = types.SimpleNamespace(parse_version=parse)
    from training import augment  # noqa: the official module
    return augment


@contextlib.contextmanager
def recording(torch):
    """torch.rand / torch.randn record what they return, in order: [(kind, tensor)]."""
    calls, rand, randn = [], torch.rand, torch.randn

    def recorded(kind, function):
        def draw(*args, **kwargs):
            value = function(*args, **kwargs)
            calls.append((kind, value.detach().cpu().numpy()))
            return value
        return draw
    torch.rand, torch.randn = recorded("uniform", rand), recorded("normal", randn)
    try:
        yield calls
    finally:
        torch.rand, torch.randn = rand, randn


def numbers_from_calls(calls, pipe, batch: int, channels: int) -> dict:
    """The official draws in augment_pipe.draw's layout {name: {"apply", "value"}}: each switched-on
    operation's value(s) then its firing number (cutout: the firing number first), in DRAWS order;
    operations that are off (or hue/saturation on 1 channel) draw nothing there and never fire."""
    from jaxgan.training import augment_pipe
    numbers, queue = {}, list(calls)
    for name, distribution, count in augment_pipe.DRAWS:
        on = pipe.multiplier(name) > 0 and (channels > 1 or name not in ("hue", "saturation"))
        if not on:
            numbers[name] = {"apply": np.ones(batch, np.float32),
                             "value": np.zeros((batch, count), np.float32)}
            continue
        first, second = queue.pop(0), queue.pop(0)
        (value_kind, value), (apply_kind, apply) = (
            (second, first) if name == "cutout" else (first, second))
        if (value_kind, apply_kind) != (distribution, "uniform"):
            raise AssertionError(f"{name}: the official code drew {value_kind}/{apply_kind}")
        numbers[name] = {"apply": apply.reshape(batch),
                         "value": value.reshape(batch, count)}
    if queue:
        raise AssertionError(f"{len(queue)} official draws left over")
    return numbers


def official_run(augment, torch, multipliers: dict, p: float, images_BCHW):
    """The official pipe on the images: (output, recorded draws, G_inv or None)."""
    pipe = augment.AugmentPipe(**multipliers)
    pipe.p.copy_(torch.as_tensor(p))
    seen = {}
    pad, affine_grid = torch.nn.functional.pad, torch.nn.functional.affine_grid

    def record_pad(*args, **kwargs):
        seen.setdefault("pad", kwargs.get("pad", args[1] if len(args) > 1 else None))
        return pad(*args, **kwargs)

    def record_grid(*args, **kwargs):
        seen["theta"], seen["size"] = kwargs["theta"].detach().double().numpy(), kwargs["size"]
        return affine_grid(*args, **kwargs)
    torch.nn.functional.pad, torch.nn.functional.affine_grid = record_pad, record_grid
    try:
        with recording(torch) as calls, torch.no_grad():
            out = pipe(torch.as_tensor(images_BCHW))
    finally:
        torch.nn.functional.pad, torch.nn.functional.affine_grid = pad, affine_grid
    g_inv = None
    if "theta" in seen:
        height, width = images_BCHW.shape[2:]
        g_inv = undo_official_conjugation(seen["theta"], seen["pad"], seen["size"], height, width)
    return out.numpy(), calls, g_inv


def _m(rows):
    return np.array(rows, np.float64)


def undo_official_conjugation(theta_B23, pad, size, height: int, width: int):
    """G_inv from the matrix AugmentPipe hands affine_grid: it computed
    theta = S(2/W_up, 2/H_up) T(-1/2) S(2) T(pad) G_inv S(2)^-1 T(-1/2)^-1 S(2/W_out, 2/H_out)^-1
    (training/augment.py, 'Execute transformation'); every factor but G_inv is known."""
    mx0, mx1, my0, my1 = (int(v) for v in pad)
    up_h, up_w = (height + my0 + my1) * 2, (width + mx0 + mx1) * 2
    out_h, out_w = size[2], size[3]

    def scale(sx, sy):
        return _m([[sx, 0, 0], [0, sy, 0], [0, 0, 1]])

    def translate(tx, ty):
        return _m([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
    before = scale(2 / up_w, 2 / up_h) @ translate(-0.5, -0.5) @ scale(2, 2) @ translate(
        (mx0 - mx1) / 2, (my0 - my1) / 2)
    after = np.linalg.inv(scale(2, 2)) @ np.linalg.inv(translate(-0.5, -0.5)) @ np.linalg.inv(
        scale(2 / out_w, 2 / out_h))
    theta = np.concatenate([theta_B23, np.broadcast_to(_m([[0, 0, 1]]), (len(theta_B23), 1, 3))], 1)
    return np.linalg.inv(before) @ theta @ np.linalg.inv(after)


def compare(official_dir: str, batch: int = 64, side: int = 16, p: float = 0.7, seed: int = 0):
    """[(case, channels, what, largest difference, bound)] for every case."""
    import torch
    from jaxgan.training import augment_pipe
    augment = load_official(official_dir)
    torch.manual_seed(seed)
    rows = []
    for channels in (3, 1):
        images = np.random.default_rng(seed).uniform(-1, 1, (batch, channels, side, side))
        images = images.astype(np.float32)
        for case, multipliers in {**GEOMETRIC_CASES, "bgc geometry": dict(
                xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1)}.items():
            _, calls, official_g = official_run(augment, torch, multipliers, p, images)
            pipe = augment_pipe.Pipe(**multipliers)
            numbers = numbers_from_calls(calls, pipe, batch, channels)
            ours = np.asarray(augment_pipe.geometric_matrix(numbers, pipe, p, side, side),
                              np.float64)
            # Both sides multiply up to 8 float32 3x3 matrices (3 products each), the official
            # one's rotations by cos/sin of float32 angles; the entries reach |G| (translations in
            # pixels), so each is within a few tens of roundings of the largest.
            bound = 64 * EPS32 * max(1.0, float(np.abs(official_g).max()))
            rows.append((case, channels, "G_inv", float(np.abs(ours - official_g).max()), bound))
        for case, multipliers in COLOUR_CASES.items():
            official_out, calls, _ = official_run(augment, torch, multipliers, p, images)
            pipe = augment_pipe.Pipe(**multipliers)
            numbers = numbers_from_calls(calls, pipe, batch, channels)
            ours = np.asarray(augment_pipe.apply(images.transpose(0, 2, 3, 1), numbers, pipe, p))
            ours = ours.transpose(0, 3, 1, 2)
            # Up to five 4x4 products (4-term sums) and a 4-term dot per pixel, on entries up to
            # 2^(3 * saturation std) and pixels in [-1, 1]: a few tens of roundings of the largest
            # output.
            bound = 64 * EPS32 * max(1.0, float(np.abs(official_out).max()))
            rows.append((case, channels, "pixels", float(np.abs(ours - official_out).max()), bound))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", required=True, help="a checkout of brownvc/R3GAN or "
                        "NVlabs/stylegan2-ada-pytorch (training/augment.py, torch_utils/)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--side", type=int, default=16)
    parser.add_argument("--p", type=float, default=0.7)
    args = parser.parse_args(argv)
    rows = compare(args.official, args.batch, args.side, args.p)
    print(f"{'case':28s} {'channels':>8s} {'compared':>8s} {'max |diff|':>12s} {'bound':>10s}")
    for case, channels, what, diff, bound in rows:
        print(f"{case:28s} {channels:8d} {what:>8s} {diff:12.3g} {bound:10.3g}"
              + ("" if diff <= bound else "  EXCEEDS"))


if __name__ == "__main__":
    main()
