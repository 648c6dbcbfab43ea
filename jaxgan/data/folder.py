"""Load an artist's own folder of images into memory, robustly (numpy + Pillow; no JAX, no TensorFlow).

Layout:
  PATH/class_a/...  PATH/class_b/...   one subfolder per class (walked recursively), labels from the
                                       sorted subfolder names;
  PATH/*.png ...                       or images directly in PATH: unconditional (class_names = ()).

Every file that is not hidden is offered to Pillow, whatever its extension says, but only as one of
the raster formats of `fileio.RASTER_FORMATS` (never EPS/PostScript, PDF or other formats that
Pillow hands to other programs). Whatever cannot be used (empty, not an image, truncated or
corrupt, hidden, broken link, unreadable, more than `max_pixels`) is skipped and recorded with a
short reason in `FolderImages.skipped`; only "nothing usable at all" is an error. Each image is decoded, EXIF-rotated, made 8-bit RGB (or 'L' grayscale for channels=1) with
transparency composited on white, made square (the centre square cropped, or with `fit="pad"`
the whole picture centred on white) and resized (antialiased) to `resolution`. Files are decoded in parallel threads (Pillow releases the GIL while decoding); the
result is deterministic (files in sorted relative-path order) and only the small uint8 copies are kept.
"""
from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import os
import threading
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from jaxgan.errors import UserError
from jaxgan.fileio import NotRegularFile, open_raster, open_regular

# Folders that operating systems and tools leave behind (their contents are not the artist's images).
SYSTEM_FOLDERS = frozenset({"__MACOSX", "@eaDir", "__pycache__", "$RECYCLE.BIN", "System Volume Information"})

_REDUCING_GAP = 3.0  # decode/reduce cheaply only down to 3x the target size, then Lanczos
_EXIF_ORIENTATION = 0x0112
_HIGH_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_GRAY_MODES = ("1", "L", "LA", "La", "F") + _HIGH_BIT_MODES
# Signatures of image formats, to tell "a damaged image" from "not an image at all".
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
          (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"BM", "BMP"))
# Formats that are never opened (fileio.RASTER_FORMATS), named in the skip reason.
_NOT_RASTER = ((b"%!PS", "PostScript/EPS"), (b"\xc5\xd0\xd3\xc6", "PostScript/EPS"), (b"%PDF", "PDF"))
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1")


@dataclasses.dataclass(frozen=True)
class FolderImages:
    images: np.ndarray            # uint8 (N, R, R, C), C = channels
    labels: np.ndarray            # int32 (N,); all zeros when unconditional
    class_names: tuple[str, ...]  # sorted subfolder names; () when the images sit directly in PATH
    skipped: tuple[tuple[str, str], ...]  # (path, reason) for every file or folder passed over


def default_num_workers() -> int:
    return min(32, (os.cpu_count() or 1) + 4)


# Largest decoded image (width x height, after JPEG's reduced-size decoding): `data.max_image_pixels`.
# 8192 x 8192; bigger files are skipped with this reason. (Pillow's own decompression-bomb check,
# ~179 Mpx, still applies on top.)
DEFAULT_MAX_IMAGE_PIXELS = 2**26
# Bytes a decode needs per pixel, as a multiple of Pillow's storage per pixel: the image, numpy's
# copy and the 8-bit conversion. Measured on 16-bit PNGs: ~4-5 B/px for 2 B/px of storage.
_PEAK_PER_STORED_BYTE = 3
_STORED_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2, "LA": 4,
                 "La": 4, "PA": 4}  # everything else: 4 bytes per pixel


class MemoryBudget:
    """Bounds the memory of the decoders running at once, whatever their number: each reserves what
    its image needs (known from the header) before decoding and waits while the reservations would
    exceed the budget. One image larger than the whole budget still decodes, alone."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max(1, int(max_bytes))
        self._used = 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def reserve(self, nbytes: int):
        nbytes = int(nbytes)
        with self._cond:
            self._cond.wait_for(lambda: self._used == 0 or self._used + nbytes <= self.max_bytes)
            self._used += nbytes
        try:
            yield
        finally:
            with self._cond:
                self._used -= nbytes
                self._cond.notify_all()


def available_memory() -> int:
    """Bytes of memory available to new allocations (MemAvailable on Linux; else physical / 2)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):
        return 2**31


_default_budget = None
_default_budget_lock = threading.Lock()


def default_memory_budget() -> MemoryBudget:
    """One budget for every decoder of the process: half the memory available when first asked."""
    global _default_budget
    with _default_budget_lock:
        if _default_budget is None:
            _default_budget = MemoryBudget(available_memory() // 2)
        return _default_budget


def decode_cost(image: Image.Image) -> int:
    """Bytes a decode of `image` (its header read) may take at its peak."""
    width, height = image.size
    return width * height * _STORED_BYTES.get(image.mode, 4) * _PEAK_PER_STORED_BYTE


@dataclasses.dataclass(frozen=True)
class FolderFiles:
    """The usable-looking files of a folder, not decoded: for folders too big to decode up front."""
    paths: tuple[str, ...]        # sorted by class, then relative path
    labels: np.ndarray            # int32 (N,)
    class_names: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]


@dataclasses.dataclass
class _Listing:
    root: str
    tasks: list            # [(full path, class index)]
    class_dirs: list       # os.DirEntry per class; [] when unconditional
    skipped: list          # [(path, reason)]


def load_folder(path, resolution: int, channels: int, num_workers: int | None = None,
                max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
                memory_budget: int | MemoryBudget | None = None,
                fit: str = "crop") -> FolderImages:
    """Load every usable image under `path` (a folder, or `list_folder`'s listing of one) as uint8
    (N, resolution, resolution, channels).

    At most `num_workers` decoders run at once, and only as many as fit `memory_budget` (bytes, or
    a MemoryBudget; default: the process's, half the available memory); images of more than
    `max_pixels` pixels are skipped; non-square images are made square as `fit` says ("crop" or
    "pad", see `image_to_array`).
    """
    _check_shape(resolution, channels)
    num_workers = _workers(num_workers)
    budget = _budget(memory_budget)
    listing = path if isinstance(path, _Listing) else list_folder(path)
    tasks, n = listing.tasks, len(listing.tasks)
    skipped = listing.skipped
    _prepare_pillow()
    # Grown as images arrive (realloc: no second copy), so that a folder where most files are not images
    # (captions next to every picture, say) never reserves room for all of them.
    capacity = min(n, 256)
    images = np.empty((capacity, resolution, resolution, channels), np.uint8)
    labels = np.empty((n,), np.int32)
    count = 0
    with warnings.catch_warnings():
        # Pillow warns about odd EXIF, large images, ...: the result (or the skip reason) says enough.
        warnings.filterwarnings("ignore", module=r"PIL(\.|$)")
        results = ordered_map(
            lambda task: decode_file(task[0], resolution, channels, max_pixels, budget, fit),
            tasks, num_workers)
        for (full, label), (array, reason) in zip(tasks, results):
            if array is None:
                skipped.append((full, reason))
            else:
                if count == capacity:
                    capacity = min(n, 2 * capacity)
                    images.resize((capacity, resolution, resolution, channels), refcheck=False)
                images[count] = array
                labels[count] = label
                count += 1
    if count < capacity:
        images.resize((count, resolution, resolution, channels), refcheck=False)
    labels, class_names = _drop_empty_classes(listing, labels[:count].copy())
    return FolderImages(images=images, labels=labels, class_names=class_names,
                        skipped=_finish_skipped(listing, count))


def scan_folder(path, num_workers: int | None = None) -> FolderFiles:
    """The files under `path` that look like images (header read, nothing decoded), with labels.

    Cheap enough for folders of any size; a file that turns out to be damaged only when it is decoded
    is the streaming loader's to skip.
    """
    listing = path if isinstance(path, _Listing) else list_folder(path)
    _prepare_pillow()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"PIL(\.|$)")
        reasons = list(ordered_map(lambda task: _probe_file(task[0]), listing.tasks,
                                    _workers(num_workers)))
    kept = [task for task, reason in zip(listing.tasks, reasons) if reason is None]
    listing.skipped.extend((task[0], reason) for task, reason in zip(listing.tasks, reasons) if reason)
    labels, class_names = _drop_empty_classes(listing, np.array([t[1] for t in kept], np.int32))
    return FolderFiles(paths=tuple(t[0] for t in kept), labels=labels, class_names=class_names,
                       skipped=_finish_skipped(listing, len(kept)))


def list_folder(path: str) -> _Listing:
    """Walk `path`: every candidate file with its class index, and what was passed over."""
    root = os.path.expanduser(os.fspath(path))
    shown = _show(root)
    if not os.path.exists(root):
        kind = "is a broken link" if os.path.islink(root) else "does not exist"
        raise UserError(f"Image folder {shown} {kind}.")
    if not os.path.isdir(root):
        raise UserError(f"Image folder {shown} is a file, not a folder: point the data path at the folder "
                        f"that holds the images (or one subfolder per class).")
    try:
        entries = _sorted_entries(root)
    except OSError as e:
        raise UserError(f"Cannot read image folder {shown}: {e.strerror or e}.") from None

    skipped: list[tuple[str, str]] = []
    class_dirs, loose = [], []
    for entry in entries:
        kind = _classify(entry, skipped)
        if kind == "dir":
            class_dirs.append(entry)
        elif kind == "file":
            loose.append(entry.path)

    # tasks: (file path, class index); files sorted by relative path within each class.
    tasks: list[tuple[str, int]] = []
    if class_dirs:
        for full in loose:
            skipped.append((full, "loose file next to class folders (not used: the classes come from the "
                                   "subfolders)"))
        seen = {os.path.realpath(root)}
        for label, entry in enumerate(class_dirs):
            files: list[tuple[str, str]] = []
            _walk(entry.path, "", files, skipped, seen)
            tasks.extend((full, label) for _, full in sorted(files))
    else:
        tasks = [(full, 0) for full in loose]
    return _Listing(root=root, tasks=tasks, class_dirs=class_dirs, skipped=skipped)


def _drop_empty_classes(listing: _Listing, labels: np.ndarray):
    """(labels renumbered over the classes that kept an image, their names); notes dropped classes."""
    if not listing.class_dirs:
        return labels, ()
    class_names = [entry.name for entry in listing.class_dirs]
    per_class = np.bincount(labels, minlength=len(class_names))
    kept = [i for i, c in enumerate(per_class) if c > 0]
    for i, c in enumerate(per_class):
        if c == 0:
            listing.skipped.append((listing.class_dirs[i].path, f"class '{_show(class_names[i])}' dropped: "
                                                                f"no usable image in this folder"))
    if len(labels) and len(kept) < len(class_names):
        remap = np.full(len(class_names), -1, np.int32)
        remap[kept] = np.arange(len(kept), dtype=np.int32)
        labels = remap[labels]
    return labels, tuple(class_names[i] for i in kept)


def _finish_skipped(listing: _Listing, count: int) -> tuple:
    skipped = sorted(listing.skipped, key=lambda item: _sort_key(item[0]))
    if count == 0:
        shown = _show(listing.root)
        if not skipped:
            raise UserError(f"Image folder {shown} is empty: put the images in it "
                            f"(or one subfolder per class).")
        raise UserError(f"No usable image in folder {shown}. {skipped_report(skipped)}")
    return tuple(skipped)


def _check_shape(resolution, channels) -> None:
    if not isinstance(resolution, (int, np.integer)) or resolution < 1:
        raise UserError(f"Image resolution must be a positive whole number, got {resolution!r}.")
    if channels not in (1, 3):
        raise UserError(f"A folder of images can be loaded with 1 (grayscale) or 3 (RGB) channels, "
                        f"got {channels!r}.")


def _budget(memory_budget) -> MemoryBudget:
    if memory_budget is None:
        return default_memory_budget()
    return memory_budget if isinstance(memory_budget, MemoryBudget) else MemoryBudget(memory_budget)


def _workers(num_workers: int | None) -> int:
    if num_workers is None:
        return default_num_workers()
    if num_workers < 1:
        raise UserError(f"num_workers must be at least 1, got {num_workers!r}.")
    return num_workers


def _prepare_pillow() -> None:
    _register_optional_plugins()
    Image.init()  # import every format plugin once, before worker threads race to do it


def skipped_report(skipped, limit: int = 5) -> str:
    """One short paragraph: how many files (or folders) were skipped, and the first `limit` with reasons."""
    skipped = list(skipped)
    if not skipped:
        return "No files were skipped."
    noun = "file or folder" if len(skipped) == 1 else "files or folders"
    shown = "; ".join(f"{_show(p)} ({reason})" for p, reason in skipped[:limit])
    more = f"; and {len(skipped) - limit} more" if len(skipped) > limit else ""
    return f"Skipped {len(skipped)} {noun}: {shown}{more}."


# ----------------------------------------------------------------------------------------- walking


def _sorted_entries(folder: str) -> list[os.DirEntry]:
    with os.scandir(folder) as it:
        return sorted(it, key=lambda e: e.name)


def _classify(entry: os.DirEntry, skipped: list) -> str | None:
    """'dir', 'file', or None (recorded in `skipped`). Links are followed."""
    try:
        is_dir = entry.is_dir()
        is_file = not is_dir and entry.is_file()
    except OSError as e:
        skipped.append((entry.path, f"unreadable: {e.strerror or e}"))
        return None
    if entry.name.startswith("."):
        skipped.append((entry.path, "hidden folder (not searched)" if is_dir else "hidden file"))
        return None
    if is_dir:
        if entry.name in SYSTEM_FOLDERS:
            skipped.append((entry.path, "system folder (not searched)"))
            return None
        return "dir"
    if is_file:
        return "file"
    if entry.is_symlink():
        skipped.append((entry.path, "broken link"))
    else:
        skipped.append((entry.path, "not a regular file"))
    return None


def _walk(folder: str, rel: str, files: list, skipped: list, seen: set) -> None:
    """Collect (relative path, full path) of every file under `folder`, skipping hidden/system folders."""
    real = os.path.realpath(folder)
    if real in seen:
        skipped.append((folder, "folder already searched (a link to it, or a link loop)"))
        return
    seen.add(real)
    try:
        entries = _sorted_entries(folder)
    except OSError as e:
        skipped.append((folder, f"unreadable folder: {e.strerror or e}"))
        return
    for entry in entries:
        kind = _classify(entry, skipped)
        if kind == "dir":
            _walk(entry.path, f"{rel}{entry.name}/", files, skipped, seen)
        elif kind == "file":
            files.append((f"{rel}{entry.name}", entry.path))


def _sort_key(path: str) -> str:
    return path.replace(os.sep, "/")


def _show(path: str) -> str:
    """A path made printable (names that are not valid UTF-8 come back as escapes)."""
    return path.encode("utf-8", "backslashreplace").decode("utf-8") if isinstance(path, str) else repr(path)


# ----------------------------------------------------------------------------------------- decoding


def ordered_map(fn, items, num_workers: int):
    """Like map(fn, items) over a thread pool: results in input order, at most a few ahead in flight.
    `items` may be any iterable (read lazily, as results are taken)."""
    if num_workers == 1 or (hasattr(items, "__len__") and len(items) <= 1):
        yield from map(fn, items)
        return
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=num_workers,
                                                     thread_name_prefix="load_folder")
    try:
        window = collections.deque()
        for item in items:
            window.append(executor.submit(fn, item))
            if len(window) >= 4 * num_workers:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()
    except BaseException:  # an interrupt, or the consumer stopped: do not decode the rest
        executor.shutdown(wait=True, cancel_futures=True)
        raise
    executor.shutdown(wait=True)


def _register_optional_plugins() -> None:
    """Let Pillow read HEIC/HEIF (phone photos) when the optional pillow-heif package is installed."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return
    try:
        register_heif_opener()
    except Exception:  # noqa: BLE001 - an optional extra must never break loading
        pass


_CANNOT_READ = ("broken link", "file vanished", "unreadable", "not a regular file",
                 "too large to decode (out of memory)")


def is_bad_content(reason: str) -> bool:
    """Whether `decode_file`'s reason blames the file's contents (so skipping it is right every
    time), rather than reading it (I/O errors, a file deleted meanwhile, memory)."""
    return not reason.startswith(_CANNOT_READ)


class ImageRefused(Exception):
    """A file `opened_image` will not hand on; its message is the short reason."""


@contextlib.contextmanager
def opened_image(full: str, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
                 draft_side: int | None = None, limit_name: str = "data.max_image_pixels"):
    """The one way jaxgan opens an image file a person gave it (training folders, the
    evaluator's folders, the gallery's real images, the watermark tool): a regular file only
    (opened so that a FIFO never blocks), one of `fileio.RASTER_FORMATS` only, its header read and
    at most `max_pixels` pixels (`limit_name` is the setting named in the reason; with
    `draft_side`, JPEGs count at the reduced size they will be decoded at). Yields the Pillow
    image with its pixels not yet decoded; raises ImageRefused(reason) for anything else."""
    f, reason = _open_file(full)
    if f is None:
        raise ImageRefused(reason)
    with f:
        image, reason = _open_image(f)
        if image is None:
            raise ImageRefused(reason)
        with image:
            if draft_side is not None:  # JPEG: decode at 1/2, 1/4 or 1/8 scale when it is enough
                try:
                    image.draft(None, (draft_side, draft_side))
                except Exception as e:  # noqa: BLE001
                    raise ImageRefused(f"truncated or corrupt: {short_error(e)}") from None
            width, height = image.size
            if width * height > max_pixels:
                raise ImageRefused(f"too large: {width}x{height} pixels, more than "
                                   f"{limit_name}={max_pixels:,}")
            yield image


def image_header(full: str, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS):
    """((width, height), mode) of an image file, or (None, reason): `opened_image`, nothing
    decoded."""
    try:
        with opened_image(full, max_pixels) as image:
            return (image.size, image.mode), None
    except ImageRefused as refused:
        return None, str(refused)


def _probe_file(full: str) -> str | None:
    """None when `full` opens as an image (header only, nothing decoded), else why it is skipped.
    No pixel limit here: a large JPEG may decode at a reduced size (`decode_file` says)."""
    return image_header(full, max_pixels=float("inf"))[1]


def _open_file(full: str):
    """(open binary file, None) or (None, reason)."""
    try:
        f = open_regular(full)
    except NotRegularFile:
        return None, "not a regular file"
    except FileNotFoundError:
        return None, "broken link" if os.path.islink(full) else "file vanished while loading"
    except OSError as e:
        return None, f"unreadable: {e.strerror or e}"
    try:
        empty = os.fstat(f.fileno()).st_size == 0
    except OSError as e:
        f.close()
        return None, f"unreadable: {e.strerror or e}"
    if empty:
        f.close()
        return None, "empty file"
    return f, None


def _open_image(f):
    """(Pillow image, header read, None) or (None, reason)."""
    try:
        return open_raster(f), None
    except Image.DecompressionBombError as e:
        return None, f"too large (Pillow's decompression-bomb limit): {short_error(e)}"
    except UnidentifiedImageError:
        return None, unidentified_reason(f)
    except MemoryError:
        return None, "too large to decode (out of memory)"
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for damaged files
        return None, f"truncated or corrupt: {short_error(e)}"


def decode_file(full: str, resolution: int, channels: int,
                max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, budget: MemoryBudget | None = None,
                fit: str = "crop"):
    """(uint8 array (R, R, C), None) or (None, reason). Never raises for a bad file.

    Images of more than `max_pixels` pixels are refused; the decode waits for its share of
    `budget` (default: the process's) before it starts.
    """
    try:
        with opened_image(full, max_pixels, int(resolution * _REDUCING_GAP)) as image:
            with (budget or default_memory_budget()).reserve(decode_cost(image)):
                return _decode_opened(image, resolution, channels, fit)
    except ImageRefused as refused:
        return None, str(refused)


def _decode_opened(image: Image.Image, resolution: int, channels: int, fit: str = "crop"):
    try:
        image.load()
    except Image.DecompressionBombError as e:
        return None, f"too large (Pillow's decompression-bomb limit): {short_error(e)}"
    except MemoryError:
        return None, "too large to decode (out of memory)"
    except Exception as e:  # noqa: BLE001
        return None, f"truncated or corrupt: {short_error(e)}"
    try:
        return image_to_array(image, resolution, channels, fit), None
    except MemoryError:
        return None, "too large to decode (out of memory)"
    except Exception as e:  # noqa: BLE001
        return None, f"could not convert ({image.mode} image): {short_error(e)}"


def unidentified_reason(f) -> str:
    try:
        f.seek(0)
        head = f.read(32)
    except OSError:
        return "not an image"
    for magic, name in _NOT_RASTER:
        if head.startswith(magic):
            return f"not a supported image format ({name})"
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return f"truncated or corrupt: starts like a {name} file but cannot be read"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return ("HEIC/HEIF photo: Pillow cannot read it (convert it to JPEG or PNG, "
                "or pip install pillow-heif)")
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"):
        return "AVIF image: this Pillow cannot read it (convert it to JPEG or PNG)"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "truncated or corrupt: starts like a WebP file but cannot be read"
    return "not an image"


def short_error(error: BaseException, limit: int = 120) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def image_to_array(image: Image.Image, resolution: int, channels: int,
                   fit: str = "crop") -> np.ndarray:
    """A loaded Pillow image -> uint8 (R, R, C): oriented, 8-bit, made square (`fit`: "crop" its
    centre square, or "pad" the whole picture, centred, with white), resized, alpha on white."""
    image = _exif_transposed(image)
    image = to_8bit(image)  # 'L', 'LA', 'RGB' or 'RGBA'
    # Pillow resizes images with alpha premultiplied, so compositing after the resize is exact enough
    # and much cheaper than compositing the full-size original.
    image = (_padded_square if fit == "pad" else _cropped_square)(image, resolution)
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    if image.mode in ("LA", "RGBA"):
        color = array[..., :-1].astype(np.uint32)
        alpha = array[..., -1:].astype(np.uint32)
        array = ((color * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)
    if channels == 3 and array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    elif channels == 1 and array.shape[-1] == 3:
        array = np.asarray(Image.fromarray(np.ascontiguousarray(array)).convert("L"))[:, :, None]
    return np.ascontiguousarray(array)


def _cropped_square(image: Image.Image, resolution: int) -> Image.Image:
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return image.resize((resolution, resolution), Image.Resampling.LANCZOS,
                        box=(left, top, left + side, top + side), reducing_gap=_REDUCING_GAP)


def _padded_square(image: Image.Image, resolution: int) -> Image.Image:
    """The whole picture resized so its longer side is `resolution`, centred on a white square
    (transparent white where the picture has alpha, so the padding composites like its
    background). A wide bus stays a bus instead of losing its front and back to a crop.
    By hand rather than ImageOps.pad: that resizes without `reducing_gap`, which the crop path
    uses so that a 16,000-px drawing is not Lanczos-filtered at full size."""
    w, h = image.size
    scale = resolution / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    resized = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=_REDUCING_GAP)
    white = {"L": 255, "LA": (255, 0), "RGB": (255, 255, 255), "RGBA": (255, 255, 255, 0)}
    canvas = Image.new(image.mode, (resolution, resolution), white[image.mode])
    canvas.paste(resized, ((resolution - size[0]) // 2, (resolution - size[1]) // 2))
    return canvas


def _exif_transposed(image: Image.Image) -> Image.Image:
    try:
        orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - damaged EXIF: keep the pixels as stored
        return image
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        try:
            return ImageOps.exif_transpose(image)
        except Exception:  # noqa: BLE001
            return image
    return image


def _high_bit_to_8bit(values, rows_per_chunk: int = 256) -> np.ndarray:
    """uint16 (or int32 holding 16-bit data) (H, W) -> uint8, 0..65535 -> 0..255 rounded, a few
    rows at a time: widening a whole 8000x8000 image to int64 would take 512 MB per copy."""
    out = np.empty(values.shape, np.uint8)
    for top in range(0, values.shape[0], rows_per_chunk):
        chunk = np.clip(values[top:top + rows_per_chunk], 0, 65535).astype(np.uint32)
        out[top:top + rows_per_chunk] = (chunk + 128) // 257
    return out


def to_8bit(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 'L', 'LA', 'RGB' or 'RGBA' with 8 bits per channel (scaled, never clipped)."""
    mode = image.mode
    if mode in _HIGH_BIT_MODES:
        # 16-bit (or 32-bit integer holding 16-bit data): 0..65535 -> 0..255. Pillow's convert("L") would
        # clip everything above 255 to white.
        return Image.fromarray(_high_bit_to_8bit(np.asarray(image)))
    if mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        if values.size and values.max() <= 1.0:  # floats in 0..1; otherwise assume 0..255
            values = values * 255.0
        return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))
    has_transparency = mode in _ALPHA_MODES or "transparency" in image.info
    if has_transparency:
        return image.convert("LA" if mode in _GRAY_MODES else "RGBA")  # P: its palette may hold colour
    if mode in ("L", "RGB"):
        return image
    if mode == "1":
        return image.convert("L")
    return image.convert("RGB")  # P, CMYK, YCbCr, HSV, RGBX, ...; raises for modes Pillow cannot convert

