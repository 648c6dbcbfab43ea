"""Invisible DWT-DCT watermark for generated images (64x64 and larger).

The mark lives in the luminance (Y of JPEG's YCbCr, i.e. BT.601 full range), in
the frequency domain, the way image generators deploy it (cf. the dwtDct
method of the ``invisible-watermark`` package):

1. one-level Haar DWT of Y (PyWavelets); keep the low-pass LL band,
2. split LL into 4x4 blocks and take each block's orthonormal 2-D DCT
   (``scipy.fft.dctn``); one 4x4 LL block covers an 8x8 pixel block, aligned
   with JPEG's 8x8 grid,
3. in every block, quantise ONE coefficient, ``COEFFICIENT`` (the lowest
   horizontal AC term), with step ``STEP`` onto one of two interleaved lattices
   (dithered quantisation index modulation, QIM): lattice 0 for a 0 bit,
   lattice 1 (shifted by STEP/2) for a 1 bit. The bit of block (i, j) is
   ``PAYLOAD[8 * (i % 4) + j % 8]`` (the 32-bit payload tiled over 4x8-block
   tiles, so a 64x64 image carries every bit twice) and the lattices of block
   (i, j) are shifted by a fixed pseudo-random dither ``d(i, j) * STEP``.

Detection reads the same coefficient, decides which lattice it is closer to,
and counts the blocks whose bit equals the expected payload bit. Because the
dither is uniform and independent of the image, an UNMARKED image agrees with
the payload in each block with probability exactly 1/2, independently of its
content (a flat image, a JPEG-compressed one, ...): the count is
Binomial(n, 1/2). An image is declared marked when the count reaches the
smallest k with P[Binomial(n, 1/2) >= k] <= FALSE_POSITIVE_RATE (1e-9):

    ====================  =======  ===========  ===============================
    image                 blocks   threshold    P[unmarked image passes]
    ====================  =======  ===========  ===============================
    64x64                      64   56 (87.5%)  2.8e-10
    128x128                   256  176 (68.8%)  9.4e-10
    256x256                  1024  609 (59.5%)  7.3e-10
    ====================  =======  ===========  ===============================

So an unmarked 64x64 image needs >= 56 of 64 chance agreements (a marked one
may lose 8 blocks), and larger images tolerate ever more damage at the same
false-positive rate. Counting agreeing blocks against the known payload is the
sufficient statistic here; decoding the payload by majority vote first would
throw information away (and ties at two copies per bit, at 64x64).

Measured (``benchmarks/watermark_fpr.py``): PSNR ~43 dB (>= 41 dB on real
photo crops), 0 false positives on real-photo crops, and every marked crop,
natural or GAN-like, 64 to 256 px, is detected after a Pillow JPEG q=75 round
trip.

Pixels right of the last multiple of 8 columns / below the last multiple of 8
rows are left untouched (and ignored by detection), so any size >= 64x64
works. Alpha channels are never touched. The mark is tied to the 8x8 pixel
grid: crops that are not aligned to 8 pixels, resizes and rotations remove it.

Why hand-written: the transforms come from PyWavelets and scipy.fft; only the
~50 lines of embedding/detection logic below are ours. The packaged
implementation (``invisible-watermark``) pulls in PyTorch and OpenCV, and its
dwtDct embeds into the largest-magnitude AC coefficient of each block -- a
position that JPEG can change, so the wrong coefficient gets read back -- and
returns raw bytes with no statistical decision. This module therefore has no
dependency besides numpy, PyWavelets, scipy and Pillow, and imports neither
jax nor TensorFlow.

Python API::

    from jaxgan.art import watermark
    marked = watermark.embed(image)          # uint8 HxW, HxWx1, HxWx3 or HxWx4
    result = watermark.detect(marked)        # Detection(marked=True, score=1.0, ...)
    is_marked, score = result                # unpacks as (marked, score)

CLI::

    python -m jaxgan.watermark embed IN OUT
    python -m jaxgan.watermark detect FILE...   # exit 0: all marked, 1: not, 2: error
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import hashlib
import os
import sys
from typing import Iterator

import numpy as np
import pywt
from scipy.fft import dctn, idctn
from scipy.special import bdtrc

__all__ = [
    "COEFFICIENT",
    "Detection",
    "FALSE_POSITIVE_RATE",
    "MIN_SIZE",
    "PAYLOAD",
    "STEP",
    "detect",
    "embed",
    "main",
]

# The fixed 32-bit payload: the first 4 bytes of sha256(b"jaxgan"), as a "0"/"1" string.
PAYLOAD: str = format(int.from_bytes(hashlib.sha256(b"jaxgan").digest()[:4], "big"), "032b")
# Smallest height and width that can be marked: 64x64 -> 32x32 LL band -> 64 4x4 blocks.
MIN_SIZE: int = 64
# (row, column) of the 4x4 DCT coefficient that carries the bit: the lowest horizontal AC
# term. JPEG q75 quantises the matching 8x8 pixel-DCT coefficient with step 6, far below
# STEP / 4; it was the most robust of the low AC terms we measured (DC shows as blocking).
COEFFICIENT: tuple[int, int] = (0, 1)
# QIM step, in units of the orthonormal LL-band DCT. Embedding error is uniform in
# [-STEP/2, STEP/2] on one coefficient per 64 pixels: pixel MSE = STEP**2 / 768 = 3.0,
# i.e. PSNR ~43 dB before rounding. A bit flips only if the coefficient moves >= STEP/4 = 12.
STEP: float = 48.0
# Per-image probability that an unmarked image is declared marked (exact, see module doc).
FALSE_POSITIVE_RATE: float = 1e-9

_BLOCK = 4  # DCT block size on the LL band (= 8x8 pixels)
_CELL = 2 * _BLOCK  # pixel footprint of one block
_LUMA = np.array([0.299, 0.587, 0.114])  # JPEG/JFIF (BT.601) Y from RGB
_PAYLOAD_BITS = np.array([int(b) for b in PAYLOAD], dtype=np.int64).reshape(4, 8)
_DITHER_KEY = int.from_bytes(hashlib.sha256(b"jaxgan/watermark/dither").digest()[:8], "big")
_REFINE_ITERS = 4  # extra passes that push back blocks disturbed by rounding/clipping
# Rows transformed at a time (a multiple of 8): embed and detect need ~100 bytes per pixel of a
# stripe on top of the image itself, so a 8000-pixel-wide image takes ~200 MB more, not gigabytes.
STRIPE_ROWS: int = 256


@dataclasses.dataclass(frozen=True)
class Detection:
    """Result of :func:`detect`; unpacks as ``(marked, score)``.

    Attributes:
      marked: True when ``matches >= threshold``.
      score: ``matches / blocks``: ~0.5 for unmarked images, 1.0 for an intact mark.
      matches: blocks whose bit equals the payload bit.
      blocks: number of 8x8 pixel blocks read.
      threshold: matches needed to declare the image marked.
      p_value: P[Binomial(blocks, 1/2) >= matches], the chance that an unmarked
        image agrees this well.
    """

    marked: bool
    score: float
    matches: int
    blocks: int
    threshold: int
    p_value: float

    def __iter__(self) -> Iterator:
        return iter((self.marked, self.score))


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _layout(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Expected bits and dither (in [0, 1)) of a rows x cols grid of blocks.

    Both depend only on the block position, via a hash (not numpy's RNG, whose streams
    may change between numpy versions: marks must stay readable forever).
    """
    i = np.arange(rows, dtype=np.uint64)[:, None]
    j = np.arange(cols, dtype=np.uint64)[None, :]
    with np.errstate(over="ignore"):
        h = _splitmix64((i << np.uint64(32)) ^ j ^ np.uint64(_DITHER_KEY))
    dither = (h >> np.uint64(11)).astype(np.float64) * 2.0**-53
    bits = _PAYLOAD_BITS[np.arange(rows)[:, None] % 4, np.arange(cols)[None, :] % 8]
    return bits, dither


def _threshold(blocks: int) -> int:
    """Smallest k with P[Binomial(blocks, 1/2) >= k] <= FALSE_POSITIVE_RATE."""
    k = np.arange(blocks + 2)
    tail = bdtrc(k - 1, blocks, 0.5)  # bdtrc(k - 1) = P[X > k - 1] = P[X >= k]
    tail[0] = 1.0
    return int(np.argmax(tail <= FALSE_POSITIVE_RATE))


def _check(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(f"watermark expects a uint8 image, got dtype {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(
            f"watermark expects an HxW, HxWx1, HxWx3 or HxWx4 image, got shape {image.shape}"
        )
    height, width = image.shape[:2]
    if height < MIN_SIZE or width < MIN_SIZE:
        raise ValueError(
            f"image is {height}x{width} (HxW); the watermark needs at least "
            f"{MIN_SIZE}x{MIN_SIZE} pixels"
        )
    return image


def _luma(image: np.ndarray) -> np.ndarray:
    """Float Y of the HxWxC uint8 image's marked region (multiples of 8 pixels)."""
    rows, cols = image.shape[0] // _CELL * _CELL, image.shape[1] // _CELL * _CELL
    x = image[:rows, :cols].astype(np.float64)
    return x[:, :, 0] if x.shape[2] == 1 else x[:, :, :3] @ _LUMA


def _coefficients(y: np.ndarray) -> np.ndarray:
    """COEFFICIENT of the 4x4 DCT of every LL block: (rows / 8, cols / 8)."""
    ll = pywt.dwt2(y, "haar", mode="periodization")[0]
    r, c = ll.shape[0] // _BLOCK, ll.shape[1] // _BLOCK
    blocks = dctn(ll.reshape(r, _BLOCK, c, _BLOCK), axes=(1, 3), norm="ortho")
    return blocks[:, COEFFICIENT[0], :, COEFFICIENT[1]]


def _luma_change(change: np.ndarray) -> np.ndarray:
    """Y change (rows, cols) that adds `change` to each block's COEFFICIENT, rest unchanged."""
    r, c = change.shape
    blocks = np.zeros((r, _BLOCK, c, _BLOCK))
    blocks[:, COEFFICIENT[0], :, COEFFICIENT[1]] = change
    ll = idctn(blocks, axes=(1, 3), norm="ortho").reshape(r * _BLOCK, c * _BLOCK)
    zero = np.zeros_like(ll)
    return pywt.idwt2((ll, (zero, zero, zero)), "haar", mode="periodization")


def embed(image: np.ndarray) -> np.ndarray:
    """Returns a copy of ``image`` carrying the watermark.

    Args:
      image: uint8 array, HxW or HxWx1 (grayscale), HxWx3 (RGB) or HxWx4 (RGBA; alpha
        kept), with H >= 64 and W >= 64.

    Returns:
      uint8 array of the same shape. In colour images the same Y change is added to R, G
      and B, which changes Y by exactly that amount and leaves Cb/Cr untouched.

    Raises:
      ValueError: if the image is smaller than 64x64 or has an unsupported shape.
      TypeError: if the image is not uint8.
    """
    original = np.asarray(image)
    work = _check(original)
    rows, cols = work.shape[0] // _CELL * _CELL, work.shape[1] // _CELL * _CELL
    colour = slice(0, 1) if work.shape[2] == 1 else slice(0, 3)
    bits, dither = _layout(rows // _CELL, cols // _CELL)
    out = work.copy()
    # Round to uint8 with a fixed random dither (floor(x + u), u ~ U[0, 1) per pixel and
    # channel) rather than np.round: the image is integer, so np.round's error depends on
    # the change alone, which is the same smooth pattern in every channel; its error then
    # correlates with the pattern and shifts a coefficient by up to ~STEP / 13.
    # Dithered rounding makes the errors independent (coefficient error std <= 0.33).
    # Drawn stripe by stripe from one stream: the same numbers as one draw of the whole image.
    rng = np.random.default_rng(0)
    for top, bottom in _stripes(rows):
        noise = rng.random((bottom - top, cols, colour.stop - colour.start))
        block_rows = slice(top // _CELL, bottom // _CELL)
        _embed_stripe(out[top:bottom, :cols], colour, noise, bits[block_rows], dither[block_rows])
    return out.reshape(original.shape)


def _stripes(rows: int):
    """(top, bottom) row ranges of at most STRIPE_ROWS rows (multiples of 8). The Haar DWT and
    the 4x4 DCT never reach across an 8x8 pixel block, so each stripe is transformed alone:
    the same coefficients as the whole image, with temporary memory bounded by the width."""
    for top in range(0, rows, STRIPE_ROWS):
        yield top, min(top + STRIPE_ROWS, rows)


def _embed_stripe(out: np.ndarray, colour: slice, noise: np.ndarray, bits, dither) -> None:
    """Marks `out` (a uint8 stripe, height and width multiples of 8) in place."""
    base = out[:, :, colour].astype(np.float64)
    coef = _coefficients(_luma(out))
    offset = (dither + 0.5 * bits) * STEP
    target = np.round((coef - offset) / STEP) * STEP + offset
    change = target - coef
    delta = np.zeros(out.shape[:2])
    for _ in range(1 + _REFINE_ITERS):
        delta += _luma_change(change)
        out[:, :, colour] = np.clip(np.floor(base + delta[:, :, None] + noise), 0, 255)
        # Rounding to uint8 and clipping at 0/255 (saturated regions) leave some
        # coefficients short of their target; push those blocks again.
        change = target - _coefficients(_luma(out))
        stray = np.abs(change) > STEP / 24
        if not stray.any():
            break
        change = np.where(stray, change, 0.0)


def detect(image: np.ndarray) -> Detection:
    """Reads the watermark from ``image`` (same layouts as :func:`embed`).

    Returns:
      A :class:`Detection`; ``marked`` is True iff the image carries the mark, with at
      most ``FALSE_POSITIVE_RATE`` chance of a false positive. Unpacks as
      ``(marked, score)``.

    Raises:
      ValueError: if the image is smaller than 64x64 or has an unsupported shape.
      TypeError: if the image is not uint8.
    """
    work = _check(image)
    rows, cols = work.shape[0] // _CELL * _CELL, work.shape[1] // _CELL * _CELL
    bits, dither = _layout(rows // _CELL, cols // _CELL)
    matches = 0
    for top, bottom in _stripes(rows):
        coef = _coefficients(_luma(work[top:bottom, :cols]))
        block_rows = slice(top // _CELL, bottom // _CELL)
        phase = np.mod(coef / STEP - dither[block_rows], 1.0)  # 0 on lattice 0, 0.5 on lattice 1
        read = (phase >= 0.25) & (phase < 0.75)
        matches += int(np.sum(read == bits[block_rows]))
    blocks = int(bits.size)
    threshold = _threshold(blocks)
    return Detection(
        marked=matches >= threshold,
        score=matches / blocks,
        matches=matches,
        blocks=blocks,
        threshold=threshold,
        p_value=float(bdtrc(matches - 1, blocks, 0.5)) if matches > 0 else 1.0,
    )


# --------------------------------------------------------------------------- CLI


# Largest image the CLI reads (width x height): its 8-bit pixels are held twice (Pillow's copy and
# numpy's), 4 bytes per pixel at most, so ~0.5 GB at this limit; larger files are refused, not cut.
# The limit of every image jaxgan reads (data.max_image_pixels' default) and writes (sample.py).
MAX_PIXELS: int = 2**26
_HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_ICC_SPACE = {"L": b"GRAY", "RGB": b"RGB ", "RGBA": b"RGB "}  # ICC header bytes 16-20


class _Refused(Exception):
    """A file the CLI will not read or mark: one line, exit 2."""


def _load(path: str, for_embedding: bool):
    """Reads an image file: (Pillow image info, uint8 array for embed/detect).

    Opened as every image jaxgan reads (`jaxgan.data.folder.opened_image`): only regular files (a
    FIFO would block), only raster formats (`fileio.RASTER_FORMATS`: never PostScript), at most
    MAX_PIXELS. 16-bit and float images are scaled to 8 bits exactly as the
    folder loader does (so a marked image stored at 16 bits reads as marked); `embed` refuses them,
    since writing them back at 8 bits would lose their depth.
    """
    from jaxgan.data import folder

    if not os.path.lexists(path):  # (the shared opener's words are for a file gone mid-load)
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    try:
        with folder.opened_image(path, MAX_PIXELS, limit_name="this tool's MAX_PIXELS") as img:
            if for_embedding and img.mode in _HIGH_DEPTH_MODES:
                raise _Refused(f"a {img.mode} image ({'float' if img.mode == 'F' else 'more than 8 bits'}"
                               " per pixel) cannot be marked without losing its depth: convert it "
                               "to 8 bits first")
            img.load()
            info = dict(img.info)
            text = dict(getattr(img, "text", None) or {})
            pixels = folder.to_8bit(img)  # 'L', 'LA', 'RGB' or 'RGBA'
    except folder.ImageRefused as refused:
        raise _Refused(str(refused)) from None
    if pixels.mode == "LA":
        pixels = pixels.convert("RGBA")
    array = np.asarray(pixels, dtype=np.uint8)
    pixels.close()
    # A colour profile that does not describe the pixels now (a CMYK profile on RGB) is dropped.
    icc = info.get("icc_profile")
    if icc and icc[16:20] != _ICC_SPACE.get("RGB" if array.ndim == 3 else "L"):
        info.pop("icc_profile")
    return (info, text), array


def _save(array: np.ndarray, source, path: str) -> None:
    """Writes `array` to `path` atomically, keeping PNG text, ICC profile and EXIF of `source`."""
    from PIL import Image, PngImagePlugin

    from jaxgan import fileio

    info, text = source
    out = Image.fromarray(array)
    fmt = Image.registered_extensions().get("." + path.rsplit(".", 1)[-1].lower())
    if fmt is None:
        raise ValueError(f"unknown image format for {path} (give it an extension such as .png)")
    kwargs = {}
    for key in ("icc_profile", "exif", "dpi"):
        if key in info:
            kwargs[key] = info[key]
    if fmt == "PNG":
        if text:
            pnginfo = PngImagePlugin.PngInfo()
            for key, value in text.items():
                pnginfo.add_text(key, value)
            kwargs["pnginfo"] = pnginfo
    elif fmt == "JPEG":
        if out.mode == "RGBA":
            out = out.convert("RGB")
        kwargs.update(quality=95, subsampling=0)
    # Written beside `path`, then renamed: `embed X X` on a full disk leaves X as it was.
    with fileio.atomic_write(path) as tmp:
        try:
            out.save(tmp, format=fmt, **kwargs)
        except (TypeError, ValueError):  # a format that rejects some of the metadata
            out.save(tmp, format=fmt)


def _show(path: str) -> str:
    from jaxgan.fileio import printable
    return printable(path)


def _cmd_embed(args) -> int:
    try:
        source, pixels = _load(args.input, for_embedding=True)
    except Exception as e:  # noqa: BLE001 -- any unreadable input: one line, no traceback
        print(f"error: cannot read {_show(args.input)}: {_reason(e)}", file=sys.stderr)
        return 2
    try:
        marked = embed(pixels)
    except ValueError as e:
        print(f"error: {_show(args.input)}: {e}", file=sys.stderr)
        return 2
    try:
        _save(marked, source, args.output)
    except (OSError, ValueError, KeyError) as e:
        print(f"error: cannot write {_show(args.output)}: {_reason(e)}", file=sys.stderr)
        return 2
    return 0


def _reason(error: Exception) -> str:
    if isinstance(error, _Refused):
        return str(error)
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return " ".join(str(error).split()) or type(error).__name__


def _cmd_detect(args) -> int:
    status = 0
    for path in args.files:
        try:
            _, pixels = _load(path, for_embedding=False)
        except Exception as e:  # noqa: BLE001 -- any unreadable input: one line, no traceback
            print(f"error: cannot read {_show(path)}: {_reason(e)}", file=sys.stderr)
            status = 2
            continue
        try:
            result = detect(pixels)
        except ValueError as e:  # too small to carry the mark
            print(f"{_show(path)}\tnot marked\tscore=nan\t({e})", flush=True)
            status = max(status, 1)
            continue
        verdict = "marked" if result.marked else "not marked"
        print(
            f"{_show(path)}\t{verdict}\tscore={result.score:.3f}\t"
            f"blocks={result.matches}/{result.blocks}\tp={result.p_value:.1e}",
            flush=True,
        )
        if not result.marked:
            status = max(status, 1)
    return status


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m jaxgan.watermark",
        description="Embed or detect jaxgan's invisible DWT-DCT watermark (images >= 64x64).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_embed = sub.add_parser("embed", help="write a watermarked copy of IN to OUT")
    p_embed.add_argument("input", metavar="IN")
    p_embed.add_argument("output", metavar="OUT")
    p_detect = sub.add_parser(
        "detect",
        help="print 'PATH<TAB>marked|not marked<TAB>score=...' per file; "
        "exit 0 if all are marked, 1 if not, 2 on a read error",
    )
    p_detect.add_argument("files", metavar="FILE", nargs="+")
    args = parser.parse_args(argv)
    return _cmd_embed(args) if args.command == "embed" else _cmd_detect(args)


if __name__ == "__main__":
    sys.exit(main())
