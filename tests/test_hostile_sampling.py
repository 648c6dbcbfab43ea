"""Issue 13 on the sampling side: class names that reach file names and terminals, outputs never
overwritten silently, limits on what one command may ask for, the name/index rule for --label."""
import os
import subprocess
import sys

import pytest
from conftest import ROOT, tiny_config
from PIL import Image

from helpers import sample, write_checkpoint

# Names an artist's folders may have: scripts other than Latin, the same word composed (NFC) and
# decomposed (NFD: macOS file names), names that differ only in space or case, a terminal escape,
# bytes that are not UTF-8 (how os.fsdecode hands them over), and a class called "all".
NAMES = ["猫", "犬", "кошка", "caf\u00e9", "cafe\u0301", "cat dog", "cat_dog", "Cat_Dog",
         "evil\x1b[2Jname", "caf\udce9", "all"]


@pytest.fixture(scope="module")
def named_run(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("named"), NAMES)


@pytest.fixture(scope="module")
def numbered_run(tmp_path_factory):
    # Folders named 1..10 sort as 1, 10, 2, ..., 9: class "1" is index 0, index 1 is class "10".
    return write_checkpoint(tmp_path_factory.mktemp("numbered"), sorted(str(i) for i in range(1, 11)))


def one_line_error(status, err, needle):
    """Exit 1 and one line; or argparse's exit 2: usage, then one error line."""
    assert status in (1, 2), status
    lines = err.strip().splitlines()
    assert status == 2 or len(lines) == 1, err
    assert needle in lines[-1], err
    assert "Traceback" not in err


# ----------------------------------------------------------------------------- 2. names


def test_outdir_keeps_unicode_names_and_makes_colliding_names_unique(named_run, tmp_path, capsys):
    status, out, err = sample(capsys, "--workdir", named_run, "--seeds", "5", "--label", "name:all",
                              "--outdir", tmp_path / "one")  # the class named "all"
    assert status == 0, err
    assert os.listdir(tmp_path / "one") == ["seed0005-all.png"]
    status, out, err = sample(capsys, "--workdir", named_run, "--seeds", "5", "--outdir",
                              tmp_path / "out", "--no-watermark")
    assert status == 0, err
    names = sorted(os.listdir(tmp_path / "out"))
    assert len(names) == len(NAMES) == len({n.casefold() for n in names})  # one file per class
    assert f"Wrote {len(NAMES)} images to" in out
    assert {"seed0005-猫.png", "seed0005-犬.png", "seed0005-кошка.png", "seed0005-all.png"} <= set(names)
    # café composed and decomposed are one name after NFC: both kept, told apart by class index.
    assert {"seed0005-caf\u00e9~3.png", "seed0005-caf\u00e9~4.png"} <= set(names)
    assert "\x1b" not in "".join(names) and "\udce9" not in "".join(names)
    # Each file holds its own class, named in its metadata (escaped where not printable).
    classes = {Image.open(tmp_path / "out" / n).text["Class"] for n in names}
    assert "evil\\x1b[2Jname" in classes and "caf\\xe9" in classes


def test_existing_files_are_never_overwritten_silently(named_run, tmp_path):
    outdir = tmp_path / "out"
    outdir.mkdir()
    (outdir / "seed0001-猫.png").write_bytes(b"the artist's own file")
    command = [sys.executable, str(ROOT / "sample.py"), "--workdir", str(named_run), "--seeds",
               "0-2", "--label", "猫", "--outdir", str(outdir)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip() == (f"error: 1 of the 3 files exists already ({outdir}/seed0001-猫.png)"
                                     ": nothing was written; use --overwrite to replace them")
    assert sorted(os.listdir(outdir)) == ["seed0001-猫.png"]
    assert (outdir / "seed0001-猫.png").read_bytes() == b"the artist's own file"
    result = subprocess.run(command + ["--overwrite"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert len(os.listdir(outdir)) == 3
    Image.open(outdir / "seed0001-猫.png").verify()


def test_grid_and_gif_are_not_overwritten_either(named_run, tmp_path, capsys):
    grid, gif = tmp_path / "grid.png", tmp_path / "walk.gif"
    grid.write_bytes(b"keep")
    gif.write_bytes(b"keep")
    status, _, err = sample(capsys, "--workdir", named_run, "--label", "猫", "--grid", grid)
    one_line_error(status, err, "exists already")
    status, _, err = sample(capsys, "--workdir", named_run, "--interpolate", "1,2", "--label", "猫",
                            "--frames", "3", "--out", gif)
    one_line_error(status, err, "exists already")
    assert grid.read_bytes() == gif.read_bytes() == b"keep"


def test_default_grid_gets_a_new_name_instead_of_replacing_the_last(named_run, capsys):
    paths = []
    for _ in range(2):
        status, out, err = sample(capsys, "--workdir", named_run, "--label", "кошка", "--seeds", "0")
        assert status == 0, err
        paths.append(out.split("Wrote ")[1].split(":")[0])
    assert paths[0] != paths[1] and all(os.path.exists(p) for p in paths)


def test_names_are_printed_with_control_characters_escaped(named_run, capsys):
    status, _, err = sample(capsys, "--workdir", named_run, "--label", "nope")
    one_line_error(status, err, "unknown class 'nope'")
    assert "\x1b" not in err and "evil\\x1b[2Jname" in err and "caf\\xe9" in err


# ----------------------------------------------------------------------------- 4. limits


@pytest.mark.parametrize("args, needle", [
    (["--seeds", "0-4294967295"], "at most 10,000 seeds per command"),
    (["--seeds", "0-99,0-9999"], "at most 10,000 seeds per command"),
    (["--seeds", "0-999"], "at most 10,000 images per command"),  # 1,000 seeds x 11 classes
    (["--frames", "100000", "--interpolate", "1,2", "--out", "x.gif"], "--frames must be 2 to 1,000"),
    (["--upscale", "100000", "--label", "猫"], "more than the limit of 67,108,864 pixels"),
    (["--seeds", "0-9999", "--label", "猫", "--upscale", "8"], "more than the limit of 67,108,864 pixels"),
])
def test_limits_are_one_line_errors_naming_the_limit(named_run, tmp_path, capsys, args, needle):
    status, _, err = sample(capsys, "--workdir", named_run, *args)
    one_line_error(status, err, needle)
    assert not os.path.exists("x.gif")


# ----------------------------------------------------------------------------- 8, 9. values


@pytest.mark.parametrize("args, needle", [
    (["--truncation", "0"], "truncation must be in (0, 1], got 0.0"),
    (["--truncation", "nan"], "truncation must be in (0, 1], got nan"),
    (["--truncation", "-1"], "truncation must be in (0, 1], got -1.0"),
    (["--truncation", "1.5"], "truncation must be in (0, 1], got 1.5"),
])
def test_interpolate_validates_truncation(named_run, tmp_path, capsys, args, needle):
    out = tmp_path / "walk.gif"
    status, _, err = sample(capsys, "--workdir", named_run, "--interpolate", "1,2", "--label", "猫",
                            "--out", out, *args)
    one_line_error(status, err, needle)
    assert not out.exists()


@pytest.mark.parametrize("seeds, needle", [
    ("4294967296,1", "seeds must be in 0..2^32-1, got 4294967296"),
    ("-1,1", "seeds must be in 0..2^32-1, got -1"),
    ("1", "--interpolate takes two seeds A,B, got '1'"),
])
def test_interpolate_validates_seeds(named_run, tmp_path, capsys, seeds, needle):
    status, _, err = sample(capsys, "--workdir", named_run, f"--interpolate={seeds}", "--label", "猫",
                            "--out", tmp_path / "walk.gif")
    one_line_error(status, err, needle)


def test_reversed_seed_range_is_named_as_such(named_run, capsys):
    status, _, err = sample(capsys, "--workdir", named_run, "--seeds", "5-1")
    one_line_error(status, err, "--seeds 5-1 is a reversed range: write 1-5")


def test_label_rule_names_and_indices(numbered_run, named_run, tmp_path, capsys):
    # "1" is both class "1" (index 0) and index 1 (class "10"); "0" is no class name but an index:
    # with classes named by numbers, both are refused, and name:/index: say which is meant.
    for label in ("1", "0"):
        status, _, err = sample(capsys, "--workdir", numbered_run, "--label", label, "--seeds", "0")
        one_line_error(status, err, f"--label {label} is ambiguous")
        assert f"name:{label}" in err and f"index:{label}" in err
    for label, expected in (("name:1", "1"), ("index:1", "10"), ("2", "2"), ("index:0", "1")):
        status, out, err = sample(capsys, "--workdir", numbered_run, "--label", label, "--seeds", "3",
                                  "--outdir", tmp_path / label.replace(":", "-"))
        assert status == 0, err
        assert os.listdir(tmp_path / label.replace(":", "-")) == [f"seed0003-{expected}.png"]
    # A class called "all" makes a bare "all" ambiguous too.
    status, _, err = sample(capsys, "--workdir", named_run, "--label", "all")
    one_line_error(status, err, "--label all is ambiguous")
