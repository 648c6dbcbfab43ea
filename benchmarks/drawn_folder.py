"""A public folder of drawn pictures sorted by kind: Debian's openclipart-png, one subfolder per
category, files kept exactly as the package ships them.

  python benchmarks/drawn_folder.py --out /tmp/drawn            # animals, food, plants, transportation
  python benchmarks/drawn_folder.py --out /tmp/drawn --categories animals,food --check 32

The package (public domain clip art from openclipart.org, 0.18) is fetched with
`apt-get download openclipart-png` (needs `apt-get update` once, no root for the download itself)
and unpacked with `dpkg-deb -x`: nothing is installed. Each chosen top-level category of
/usr/share/openclipart/png/ becomes one class folder with the package's own subfolders below it
(animals/mammals/dogs/...; jaxgan's folder loader walks class folders recursively). The files are
copied byte for byte: palette and RGBA PNGs, non-square, some over 10,000 px on a side, which is
what an artist's folder looks like and what the loader has to cope with.

With --check R the folder is read by jaxgan's folder loader at R px and what it skipped is
printed with the reasons, with the mode and size mix of the files.
"""
from __future__ import annotations

import argparse
import collections
import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PACKAGE = "openclipart-png"
PACKAGE_ROOT = "usr/share/openclipart/png"
# Categories with hundreds of pictures each of recognisable objects (computer, shapes and
# signs_and_symbols are larger but mostly icons and abstract shapes).
DEFAULT_CATEGORIES = ("animals", "food", "plants", "transportation")


def fetch_package(cache: pathlib.Path) -> pathlib.Path:
    """The unpacked package's png/ folder under `cache` (downloaded and unpacked once)."""
    unpacked = cache / "unpacked"
    png_root = unpacked / PACKAGE_ROOT
    if png_root.is_dir():
        return png_root
    cache.mkdir(parents=True, exist_ok=True)
    debs = sorted(cache.glob(f"{PACKAGE}_*.deb"))
    if not debs:
        result = subprocess.run(["apt-get", "download", PACKAGE], cwd=cache, capture_output=True,
                                text=True)
        if result.returncode != 0:
            raise SystemExit(f"error: apt-get download {PACKAGE} failed (run `apt-get update` "
                             f"once first?): {result.stderr.strip()[-500:]}")
        debs = sorted(cache.glob(f"{PACKAGE}_*.deb"))
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        subprocess.run(["dpkg-deb", "-x", str(debs[-1]), scratch], check=True)
        pathlib.Path(scratch).rename(unpacked)  # complete or absent, never half-unpacked
    return png_root


def build(out: pathlib.Path, png_root: pathlib.Path, categories) -> dict[str, int]:
    """Copy each category's tree into out/<category>/; returns {category: number of files}."""
    missing = [c for c in categories if not (png_root / c).is_dir()]
    if missing:
        have = ", ".join(sorted(p.name for p in png_root.iterdir() if p.is_dir()))
        raise SystemExit(f"error: no category {', '.join(missing)} in {PACKAGE} (it has: {have})")
    counts = {}
    for category in categories:
        target = out / category
        if not target.is_dir():
            partial = out / f".{category}.partial"  # hidden: the loader never reads it
            shutil.rmtree(partial, ignore_errors=True)
            shutil.copytree(png_root / category, partial)
            partial.rename(target)
        counts[category] = sum(1 for p in target.rglob("*") if p.is_file())
    return counts


def describe(out: pathlib.Path) -> str:
    """The mix of Pillow modes and sizes in the folder (headers only)."""
    from PIL import Image
    Image.MAX_IMAGE_PIXELS = None  # headers only: nothing is decoded here
    modes, sides = collections.Counter(), []
    for path in sorted(out.rglob("*.png")):
        if any(part.startswith(".") for part in path.relative_to(out).parts):
            continue
        with Image.open(path) as image:
            modes[image.mode + (" +transparency" if "transparency" in image.info else "")] += 1
            sides.append(max(image.size))
    sides.sort()
    return (f"modes: {dict(modes.most_common())}; longest side: median {sides[len(sides) // 2]} px, "
            f"max {sides[-1]} px, {sum(s > 10_000 for s in sides)} over 10,000 px")


def check(out: pathlib.Path, resolution: int) -> None:
    from jaxgan.data.folder import load_folder
    loaded = load_folder(str(out), resolution, 3)
    counts = collections.Counter(loaded.labels.tolist())
    print(f"loader at {resolution} px: {len(loaded.images)} images, "
          + ", ".join(f"{name} {counts[i]}" for i, name in enumerate(loaded.class_names)))
    print(f"skipped {len(loaded.skipped)}:")
    for path, reason in loaded.skipped:
        print(f"  {path}: {reason}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="the folder to build (class subfolders)")
    parser.add_argument("--categories", default=",".join(DEFAULT_CATEGORIES))
    parser.add_argument("--cache", default="", help="where the .deb is downloaded and unpacked "
                        "(default: <out>.package beside the folder, never inside it)")
    parser.add_argument("--check", type=int, default=0, metavar="R",
                        help="read the folder with jaxgan's loader at R px and list what it skips")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out).resolve()
    cache = pathlib.Path(args.cache).resolve() if args.cache else out.with_name(out.name + ".package")
    png_root = fetch_package(cache)
    out.mkdir(parents=True, exist_ok=True)
    counts = build(out, png_root, [c for c in args.categories.split(",") if c])
    print(f"{out}: " + ", ".join(f"{c} {n}" for c, n in counts.items())
          + f" ({sum(counts.values())} files from {PACKAGE})")
    print(describe(out))
    if args.check:
        check(out, args.check)


if __name__ == "__main__":
    main()
