"""Files from and for people, handled defensively (no JAX, no TensorFlow).

- `RASTER_FORMATS` and `open_raster`: images are opened only as plain raster formats. Pillow's
  default is to try every plugin it has, and some hand the file to another program (EPS/PS to
  Ghostscript, which runs the file's PostScript) or read formats nobody trains on; a file named
  `cat.png` that starts with `%!PS-Adobe` must never reach Ghostscript.
- `atomic_write`: every file jaxgan writes appears whole or not at all (temporary file in the same
  folder, then a rename), and an existing file is replaced only when asked to.
- `open_regular`: a file is read only when it is a regular file (never a FIFO or a device, where a
  read blocks forever or never ends).
- `printable`: names (class names, paths) made safe to print: control characters and bytes that are
  not UTF-8 come back as escapes.
- `read_npz`: arrays from an .npz checked from their .npy headers before any data is read (a
  forged header cannot make jaxgan allocate what it declares, nor unpickle anything).
"""
from __future__ import annotations

import contextlib
import errno
import math
import os
import stat
import tempfile
import unicodedata
import zipfile

import numpy as np
from PIL import Image

# Pillow's format IDs of the raster formats jaxgan reads (README "Your own data"). Not in the list,
# on purpose: EPS (runs Ghostscript), PDF, WMF/EMF (delegated to the OS), MPEG, and the scientific
# containers (FITS, GRIB, BUFR, HDF5) whose plugins are stubs for other libraries. MPO (multi-picture
# JPEG) is read by the JPEG plugin. HEIF/AVIF count only where a plugin for them is installed.
RASTER_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "DIB", "TIFF", "PPM", "TGA", "ICO",
                  "JPEG2000", "QOI", "AVIF", "HEIF")


def raster_formats() -> tuple[str, ...]:
    """The allowed formats this Pillow knows (its `Image.open` rejects unknown names)."""
    Image.init()
    return tuple(f for f in RASTER_FORMATS if f in Image.OPEN)


def open_raster(f) -> Image.Image:
    """`Image.open` restricted to `RASTER_FORMATS` (raises PIL.UnidentifiedImageError otherwise)."""
    return Image.open(f, formats=raster_formats())


class NotRegularFile(OSError):
    """A path that is a FIFO, a device, a socket or a folder where a file was expected."""


def open_regular(path: str):
    """An open binary file; OSError (NotRegularFile: "not a regular file") unless `path` is a
    regular file. Opened non-blocking and checked with fstat on the open descriptor, so neither a
    FIFO (whose open would wait for a writer) nor a file swapped for one after a check can block
    the read."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFile(errno.EINVAL, "not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


@contextlib.contextmanager
def atomic_write(path, overwrite: bool = True):
    """Yields a temporary path next to `path`; when the block ends without an exception the
    temporary file becomes `path` (one rename), else it is removed and `path` is untouched.

    With overwrite=False an existing `path` is never replaced: FileExistsError, also when another
    process creates it meanwhile (os.link fails if the name exists; file systems without hard links
    fall back to a check just before the rename).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if not overwrite and os.path.lexists(path):
        raise FileExistsError(path)
    # Hidden ('.'-prefixed), so that a folder loader never picks up a half-written file.
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)[:64]}.", suffix=".tmp", dir=folder)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; the file gets a new file's usual mode
    try:
        yield tmp
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_no_clobber(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()  # read once, at import (os.umask can only be read by setting it)


def _link_no_clobber(tmp: str, path: str) -> None:
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # no hard links here (FAT, some network file systems)
        if os.path.lexists(path):
            raise FileExistsError(path) from None
        os.replace(tmp, path)


def printable(text) -> str:
    """`text` safe for a terminal: control and format characters (ESC, NUL, newlines, bidi
    overrides) and undecodable bytes (surrogate escapes) shown as backslash escapes."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    text = str(text)
    out = []
    for ch in text:
        if 0xD800 <= ord(ch) <= 0xDFFF:  # a byte that was not UTF-8 (os.fsdecode's escape)
            out.append(f"\\x{ord(ch) - 0xDC00:02x}" if 0xDC80 <= ord(ch) <= 0xDCFF else f"\\u{ord(ch):04x}")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    return "".join(out)


class BadArrayFile(ValueError):
    """An .npz that is not one, lacks an array, or whose arrays are not what they declare."""


def read_npz(path, names, check_headers) -> dict:
    """{name: array} for each of `names` in the .npz at `path`.

    `check_headers({name: (shape, dtype)})`, from the .npy headers alone, raises to refuse the
    arrays before any of their data is read; then each member must hold exactly the bytes its
    header declares. Only numeric dtypes, never pickled objects. Raises BadArrayFile (or what
    `check_headers` raises) and OSError.
    """
    with open_regular(path) as f:
        try:
            archive = zipfile.ZipFile(f)
        except zipfile.BadZipFile:
            raise BadArrayFile("not an .npz (zip) file") from None
        with archive:
            members = {}
            for name in names:
                try:
                    members[name] = archive.getinfo(f"{name}.npy")
                except KeyError:
                    raise BadArrayFile(f"no array {name!r} in it") from None
            headers = {name: _npy_header(archive, info) for name, info in members.items()}
            check_headers({name: (shape, dtype) for name, (shape, _, dtype, _) in headers.items()})
            return {name: _npy_data(archive, members[name], *headers[name]) for name in names}


def _npy_header(archive, info):
    """(shape, fortran order, dtype, header length) of a member, reading the header only."""
    with archive.open(info) as member:
        try:
            version = np.lib.format.read_magic(member)
            read = {(1, 0): np.lib.format.read_array_header_1_0,
                    (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read is None:
                raise BadArrayFile(f"{info.filename}: .npy format {version} is not read here")
            shape, fortran, dtype = read(member)
        except BadArrayFile:
            raise
        except (ValueError, EOFError, zipfile.BadZipFile) as error:
            raise BadArrayFile(f"{info.filename}: not an .npy array ({error})") from None
        if dtype.hasobject or dtype.kind not in "biuf":
            raise BadArrayFile(f"{info.filename}: dtype {dtype} is not numeric")
        return shape, fortran, dtype, member.tell()


def _npy_data(archive, info, shape, fortran, dtype, header_bytes):
    nbytes = math.prod(shape) * dtype.itemsize
    if info.file_size != header_bytes + nbytes:
        raise BadArrayFile(f"{info.filename}: its header declares {shape} {dtype} "
                           f"({nbytes:,} bytes) but it holds {info.file_size - header_bytes:,}")
    with archive.open(info) as member:
        try:
            member.seek(header_bytes)
            data = member.read(nbytes + 1)  # to the end: zipfile checks the CRC there
        except zipfile.BadZipFile as error:
            raise BadArrayFile(f"{info.filename}: damaged ({error})") from None
    if len(data) != nbytes:
        raise BadArrayFile(f"{info.filename}: truncated")
    return np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C")
