"""The FID Inception weights: pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`, read without
torch and without running pickled code, converted once to a plain .npz in the cache.

Where they come from, in order: an explicit path (`eval.inception_weights=PATH`,
`--inception-weights PATH`), the converted .npz or the .pth in the cache directory
(`$JAXGAN_CACHE`, default `~/.cache/jaxgan`), or a download from pytorch-fid's GitHub release
(checked against the sha256 prefix in its name). Without any of them: a UserError saying where to
put the file -- never random weights.

A .pth file is a pickle; unpickling it with `pickle.load` could run any code the file names. The
reader here (`read_torch_state_dict`) resolves only the globals that rebuild tensors
(`torch._utils._rebuild_tensor_v2`, the `torch.*Storage` types, `collections.OrderedDict`) and
refuses every other one. It reads both of torch's formats: the legacy stream (torch < 1.6, and
`_use_new_zipfile_serialization=False`, as the released file) and the zip archive.
"""
from __future__ import annotations

import collections
import hashlib
import io
import os
import pickle
import shutil
import struct
import tempfile
import urllib.request
import zipfile

import numpy as np

from jaxgan.errors import UserError

FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                   + FID_WEIGHTS_NAME)
FID_WEIGHTS_SHA256_PREFIX = "6726825d"
CONVERTED_SUFFIX = ".npz"
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C


def cache_dir() -> str:
    return os.path.expanduser(os.environ.get("JAXGAN_CACHE") or os.path.join("~", ".cache", "jaxgan"))


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# The restricted reader of torch's pickles.

def _bfloat16():
    import ml_dtypes  # a JAX dependency
    return ml_dtypes.bfloat16


_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": _bfloat16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    """Stands for `torch.FloatStorage` etc. in the pickle: only its element type matters."""

    def __init__(self, name: str):
        dtype = _STORAGE_DTYPES[name]
        self.name, self.dtype = name, np.dtype(_bfloat16() if dtype is _bfloat16 else dtype)


class _Storage:
    """A flat array of one storage's elements, filled in when the file's bytes are read."""

    def __init__(self, dtype: np.dtype, numel: int):
        self.dtype, self.numel, self.array = dtype, numel, None


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    """torch._utils._rebuild_tensor_v2, as numpy: a strided view of the storage, copied."""
    del requires_grad, backward_hooks, metadata
    return ("tensor", storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    del requires_grad, backward_hooks
    return data


class UnsafePickleError(UserError):
    """The file names a global that rebuilding tensors does not need."""


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals of a tensor state dict; `persistent_load` maps storages."""

    def __init__(self, file, storages: dict, source: str):
        super().__init__(file)
        self._storages, self._source = storages, source

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise UnsafePickleError(
            f"refusing to read {self._source}: it names the Python global {module}.{name}, which "
            "a file of tensor weights does not need (loading it could run arbitrary code)")

    def persistent_load(self, saved_id):
        if not (isinstance(saved_id, tuple) and saved_id and saved_id[0] in ("storage", b"storage")):
            raise UnsafePickleError(f"refusing to read {self._source}: unexpected persistent id "
                                    f"{str(saved_id)[:80]}")
        storage_type, key, _location, numel = saved_id[1:5]
        if not isinstance(storage_type, _StorageType):
            raise UnsafePickleError(f"refusing to read {self._source}: storage type "
                                    f"{storage_type!r} is not a torch storage")
        view = saved_id[5] if len(saved_id) > 5 else None
        if view is not None:
            raise UserError(f"cannot read {self._source}: storage views (torch < 0.4 files) are "
                            "not supported")
        key = key.decode() if isinstance(key, bytes) else str(key)
        if key not in self._storages:
            self._storages[key] = _Storage(storage_type.dtype, int(numel))
        return self._storages[key]


def _materialise(obj):
    """Replace the ("tensor", storage, offset, size, stride) records with numpy arrays."""
    if isinstance(obj, tuple) and len(obj) == 5 and obj[0] == "tensor" and isinstance(obj[1], _Storage):
        _, storage, offset, size, stride = obj
        flat = storage.array
        if int(np.prod(size)) and offset + sum((s - 1) * t for s, t in zip(size, stride)) >= flat.size:
            raise UserError("a tensor reaches past the end of its storage: the file is damaged")
        view = np.lib.stride_tricks.as_strided(
            flat[offset:], shape=size, strides=[s * flat.itemsize for s in stride])
        return np.array(view)
    if isinstance(obj, dict):
        return collections.OrderedDict((k, _materialise(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(v) for v in obj)
    return obj


def _read_zip(path) -> dict:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise UserError(f"cannot read {path}: not a torch.save zip archive (no data.pkl)")
        prefix = pickles[0][:-len("data.pkl")]
        byteorder = prefix + "byteorder"
        if byteorder in names and archive.read(byteorder).strip() not in (b"little", b""):
            raise UserError(f"cannot read {path}: big-endian tensors are not supported")
        storages: dict[str, _Storage] = {}
        result = _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), storages,
                                      os.fspath(path)).load()
        for key, storage in storages.items():
            data = archive.read(f"{prefix}data/{key}")
            storage.array = np.frombuffer(data, storage.dtype, count=storage.numel)
    return result


def _read_legacy(path) -> dict:
    """torch's pre-zip format: pickles of (magic, protocol, sys info, the object, storage keys),
    then each storage's raw bytes, led by its element count as an int64."""
    with open(path, "rb") as f:
        stream = io.BytesIO(f.read())
    source = os.fspath(path)
    try:
        magic = _RestrictedUnpickler(stream, {}, source).load()
        if magic != LEGACY_MAGIC_NUMBER:
            raise UserError(f"cannot read {path}: not a file written by torch.save")
        _RestrictedUnpickler(stream, {}, source).load()  # protocol version
        _RestrictedUnpickler(stream, {}, source).load()  # sys info
        storages: dict[str, _Storage] = {}
        result = _RestrictedUnpickler(stream, storages, source).load()
        keys = _RestrictedUnpickler(stream, {}, source).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, struct.error) as error:
        raise UserError(f"cannot read {path}: not a torch weights file ({error})") from None
    for key in keys:
        storage = storages[str(key)]
        header = stream.read(8)
        if len(header) != 8:
            raise UserError(f"cannot read {path}: the file is truncated")
        numel = struct.unpack("<q", header)[0]
        data = stream.read(numel * storage.dtype.itemsize)
        if numel != storage.numel or len(data) != numel * storage.dtype.itemsize:
            raise UserError(f"cannot read {path}: the file is truncated or damaged")
        storage.array = np.frombuffer(data, storage.dtype)
    return result


def read_torch_state_dict(path) -> dict:
    """{name: numpy array} from a file written by `torch.save(state_dict, path)`, either format,
    without importing torch and without executing anything the pickle names."""
    if not os.path.isfile(path):
        raise UserError(f"no such weights file: {path}")
    try:
        raw = _read_zip(path) if zipfile.is_zipfile(path) else _read_legacy(path)
    except UserError:
        raise
    except (pickle.UnpicklingError, KeyError, EOFError, ValueError) as error:
        raise UserError(f"cannot read {path}: not a torch weights file ({error})") from None
    state = _materialise(raw)
    if not isinstance(state, dict):
        raise UserError(f"{path} holds a {type(state).__name__}, not a state dict")
    return dict(state)


# ---------------------------------------------------------------------------------------------
# PyTorch names -> the Flax InceptionV3's variables.

def torch_to_flax(state: dict) -> dict:
    """{'params': ..., 'batch_stats': ...} for `inception.InceptionV3` from its torch state dict."""
    params, stats = {}, {}

    def put(tree, path, value):
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value

    for name, value in state.items():
        *modules, leaf = name.split(".")
        if leaf == "num_batches_tracked" or (modules and modules[0] == "AuxLogits"):
            continue
        value = np.asarray(value, np.float32)
        if modules and modules[-1] == "conv" and leaf == "weight":
            put(params, modules + ["kernel"], value.transpose(2, 3, 1, 0))  # OIHW -> HWIO
        elif modules and modules[-1] == "bn":
            target, new = {"weight": (params, "scale"), "bias": (params, "bias"),
                           "running_mean": (stats, "mean"), "running_var": (stats, "var")}[leaf]
            put(target, modules + [new], value)
        elif modules == ["fc"]:
            put(params, ["fc", "kernel" if leaf == "weight" else "bias"],
                value.T if leaf == "weight" else value)
        else:
            raise UserError(f"unexpected weight {name!r}: not pytorch-fid's Inception state dict")
    return {"params": params, "batch_stats": stats}


def check_variables(variables: dict, source: str) -> None:
    """Same tree and shapes as the Flax model's, or one clear error naming the first difference."""
    import jax
    from jaxgan.evaluation.inception import InceptionV3
    expected = jax.eval_shape(lambda: InceptionV3().init(
        jax.random.key(0), jax.numpy.zeros((1, 299, 299, 3))))
    want = {jax.tree_util.keystr(p): tuple(v.shape)
            for p, v in jax.tree_util.tree_leaves_with_path(dict(expected))}
    got = {jax.tree_util.keystr(p): tuple(np.shape(v))
           for p, v in jax.tree_util.tree_leaves_with_path(variables)}
    for key in sorted(set(want) | set(got)):
        if want.get(key) != got.get(key):
            raise UserError(f"{source} is not pytorch-fid's FID Inception: {key} is "
                            f"{got.get(key, 'missing')}, expected {want.get(key, 'absent')}")


def _flatten(tree, prefix=""):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}/")
        else:
            yield f"{prefix}{key}", value


def save_npz(variables: dict, path, sha256: str) -> None:
    """Atomic: a temporary file in the same folder, then a rename."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".npz")
    os.close(fd)
    try:
        np.savez(tmp, __sha256__=np.array(sha256), **dict(_flatten(variables)))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_npz(path) -> tuple[dict, str]:
    variables: dict = {}
    with np.load(path) as data:
        sha256 = str(data["__sha256__"])
        for name in data.files:
            if name == "__sha256__":
                continue
            node = variables
            *parents, leaf = name.split("/")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = data[name]
    return variables, sha256


# ---------------------------------------------------------------------------------------------
# Finding the weights.

def download(url: str, dest, sha256_prefix: str) -> None:
    """Fetch `url` into `dest` with a progress bar; keep it only if its sha256 starts right."""
    from tqdm import tqdm
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(dest)), suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=os.path.basename(dest)) as bar:
                for block in iter(lambda: response.read(1 << 20), b""):
                    out.write(block)
                    bar.update(len(block))
        digest = sha256_of(tmp)
        if not digest.startswith(sha256_prefix):
            raise UserError(f"downloaded {url} but its sha256 {digest[:16]}... does not start "
                            f"with {sha256_prefix}: not the expected file; nothing was kept")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def missing_weights_message(cache: str) -> str:
    return (f"the FID Inception weights are not here and cannot be downloaded: get {FID_WEIGHTS_URL} "
            f"on a machine with network and put it at {os.path.join(cache, FID_WEIGHTS_NAME)} "
            "(or pass --inception-weights PATH / eval.inception_weights=PATH), or use "
            "--extractor classifier")


def cached_weights_available(path: str | None = None) -> bool:
    """True when the Inception weights can be had without the network."""
    if path:
        return os.path.isfile(path)
    cache = cache_dir()
    return any(os.path.isfile(os.path.join(cache, name)) for name in
               (FID_WEIGHTS_NAME, FID_WEIGHTS_NAME[:-len(".pth")] + CONVERTED_SUFFIX))


def load_inception_variables(path: str | None = None, allow_download: bool = True,
                             url: str = FID_WEIGHTS_URL) -> tuple[dict, str]:
    """(Flax variables of InceptionV3, sha256 hex of the .pth they came from).

    `path`: a .pth (converted on the fly) or an .npz written by this module. Otherwise the cache:
    its .npz, else its .pth (converted once), else a download (when allowed).
    """
    if path:
        path = os.path.expanduser(os.fspath(path))
        if path.endswith(CONVERTED_SUFFIX) and os.path.isfile(path):
            return load_npz(path)
        if not os.path.isfile(path):
            raise UserError(f"no such Inception weights file: {path}")
        variables = torch_to_flax(read_torch_state_dict(path))
        check_variables(variables, path)
        return variables, sha256_of(path)
    cache = cache_dir()
    pth = os.path.join(cache, FID_WEIGHTS_NAME)
    npz = pth[:-len(".pth")] + CONVERTED_SUFFIX
    if os.path.isfile(npz):
        return load_npz(npz)
    if not os.path.isfile(pth):
        if not allow_download:
            raise UserError(missing_weights_message(cache))
        try:
            download(url, pth, FID_WEIGHTS_SHA256_PREFIX)
        except OSError as error:  # no network, DNS, HTTP errors, unwritable cache
            raise UserError(f"{missing_weights_message(cache)} ({error})") from None
    digest = sha256_of(pth)
    if not digest.startswith(FID_WEIGHTS_SHA256_PREFIX):
        raise UserError(f"{pth} has sha256 {digest[:16]}..., not {FID_WEIGHTS_SHA256_PREFIX}...: "
                        "not pytorch-fid's weights file; delete it or pass the right one")
    variables = torch_to_flax(read_torch_state_dict(pth))
    check_variables(variables, pth)
    save_npz(variables, npz, digest)
    return variables, digest
