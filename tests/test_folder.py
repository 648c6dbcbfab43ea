"""jaxgan.folder: an artist's folder of images (every format, every kind of junk) loaded robustly."""
import io
import os
import re

import numpy as np
import pytest
from PIL import Image, features

from jaxgan.errors import UserError
from jaxgan.data.folder import FolderImages, load_folder, skipped_report

R = 16  # loaded resolution
HAVE_WEBP = features.check("webp")

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def solid(size, color, mode="RGB"):
    return Image.new(mode, size, color)


def halves(size, top_color, bottom_color):
    """RGB image, top half one colour, bottom half another."""
    w, h = size
    array = np.empty((h, w, 3), np.uint8)
    array[: h // 2] = top_color
    array[h // 2:] = bottom_color
    return Image.fromarray(array)


def thirds(size):
    """Red left third, green middle third, blue right third."""
    w, h = size
    array = np.empty((h, w, 3), np.uint8)
    array[:, : w // 3] = RED
    array[:, w // 3: 2 * w // 3] = GREEN
    array[:, 2 * w // 3:] = BLUE
    return Image.fromarray(array)


def png_bytes(color=(7, 77, 177), size=(20, 20)):
    buffer = io.BytesIO()
    solid(size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(size=(64, 64), seed=0):
    noise = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def make_art_folder(root):
    """Two usable classes ('cats', 'dogs'), one class of only junk ('zebras'), junk everywhere."""
    cats, dogs, zebras = root / "cats", root / "dogs", root / "zebras"
    for folder in (cats, dogs, zebras, cats / "nested" / "deeper", dogs / ".ipynb_checkpoints"):
        folder.mkdir(parents=True)

    # ---- cats: 7 images
    thirds((90, 30)).save(cats / "thirds.bmp")                               # BMP, wide: center crop
    rgba = np.zeros((40, 40, 4), np.uint8)                                   # left half fully transparent
    rgba[:, 20:] = (0, 0, 255, 255)                                          # right half opaque blue
    Image.fromarray(rgba).save(cats / "rgba.png")
    palette = Image.new("P", (32, 32), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0, 0, 0] * 254)
    palette.paste(1, (0, 16, 32, 32))                                        # bottom half red, top index 0
    palette.save(cats / "palette.png", transparency=0)                       # index 0 transparent
    gray16 = np.full((32, 32), 32768, np.uint16)
    gray16[:16] = 65535
    Image.fromarray(gray16).save(cats / "gray16.png")                        # 16-bit grayscale PNG
    solid((30, 30), RED).save(cats / "anim.gif", save_all=True,              # GIF: first frame red
                              append_images=[solid((30, 30), BLUE)], duration=100)
    la = np.zeros((24, 24, 2), np.uint8)
    la[:, :12] = (0, 0)                                                      # left: transparent black
    la[:, 12:] = (50, 255)                                                   # right: opaque dark gray
    Image.merge("LA", [Image.fromarray(la[..., 0]), Image.fromarray(la[..., 1])]).save(cats / "la.png")
    if HAVE_WEBP:
        solid((50, 50), (10, 200, 30)).save(cats / "nested" / "deeper" / "leaf.webp", lossless=True)
    else:  # this Pillow cannot write WebP: keep the nesting check with a PNG
        solid((50, 50), (10, 200, 30)).save(cats / "nested" / "deeper" / "leaf.png")

    # ---- dogs: 5 images
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (60, 100, 3), dtype=np.uint8)).save(
        dogs / "photo.jpg", quality=90)                                      # RGB JPEG 100x60
    solid((40, 30), (0, 255, 255, 0), mode="CMYK").save(dogs / "scan.tiff")  # CMYK TIFF: red
    (dogs / "really_png.jpg").write_bytes(png_bytes((7, 77, 177)))           # PNG named .jpg
    (dogs / "png_named.txt").write_bytes(png_bytes((200, 100, 50)))          # PNG named .txt
    exif = Image.Exif()
    exif[0x0112] = 6                                                         # stored 60x30, rotate 90 CW
    halves((60, 30), RED, BLUE).save(dogs / "exif6.jpg", exif=exif, quality=95)

    # ---- junk in dogs
    (dogs / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    (dogs / "truncated.jpg").write_bytes(jpeg_bytes()[:1500])
    (dogs / "empty.jpg").write_bytes(b"")
    (dogs / "notes.txt").write_text("reference photos from the 2019 trip\n" * 20)
    (dogs / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(100))
    (dogs / ".ipynb_checkpoints" / "ckpt.png").write_bytes(png_bytes())
    os.symlink(root / "does-not-exist.png", dogs / "broken.png")
    os.symlink(dogs, dogs / "again")                                         # a link loop

    # ---- zebras: only junk -> class dropped
    (zebras / "readme.txt").write_text("nothing here yet")
    (zebras / "empty.png").write_bytes(b"")

    # ---- loose files next to the class folders
    (root / "loose.png").write_bytes(png_bytes())
    (root / ".DS_Store").write_bytes(b"junk")
    return root


CAT_FILES = sorted(["thirds.bmp", "rgba.png", "palette.png", "gray16.png", "anim.gif", "la.png",
                    "nested/deeper/leaf.webp" if HAVE_WEBP else "nested/deeper/leaf.png"])
DOG_FILES = sorted(["photo.jpg", "scan.tiff", "really_png.jpg", "png_named.txt", "exif6.jpg"])


@pytest.fixture(scope="module")
def art(tmp_path_factory):
    return make_art_folder(tmp_path_factory.mktemp("art"))


@pytest.fixture(scope="module")
def loaded(art):
    return load_folder(str(art), R, 3, num_workers=2)


def image(loaded, name):
    """The loaded image of a file, by its path relative to its class folder ('cats/rgba.png')."""
    cls, rel = name.split("/", 1)
    files = {"cats": CAT_FILES, "dogs": DOG_FILES}[cls]
    index = (0 if cls == "cats" else len(CAT_FILES)) + files.index(rel)
    return loaded.images[index].astype(int)


def reasons(loaded, root):
    return {os.path.relpath(path, root).replace(os.sep, "/"): reason for path, reason in loaded.skipped}


def test_classes_counts_shapes(loaded):
    assert isinstance(loaded, FolderImages)
    assert loaded.class_names == ("cats", "dogs")              # 'zebras' (only junk) dropped
    assert loaded.images.dtype == np.uint8 and loaded.labels.dtype == np.int32
    assert loaded.images.shape == (len(CAT_FILES) + len(DOG_FILES), R, R, 3)
    assert np.bincount(loaded.labels).tolist() == [len(CAT_FILES), len(DOG_FILES)]
    assert loaded.labels.tolist() == sorted(loaded.labels.tolist())


def test_center_crop_keeps_the_middle(loaded):
    crop = image(loaded, "cats/thirds.bmp")
    assert crop[..., 1].mean() > 200 and crop[..., 0].mean() < 40 and crop[..., 2].mean() < 40
    assert np.abs(crop[:, 3:-3] - GREEN).max() <= 8             # away from the edges: pure green


def test_pad_keeps_the_whole_picture_centred_on_white(tmp_path):
    (tmp_path / "wide").mkdir()
    (tmp_path / "tall").mkdir()
    thirds((96, 32)).save(tmp_path / "wide" / "thirds.png")        # 96x32 -> 12x4 inside 12x12
    rgba = np.zeros((36, 12, 4), np.uint8)                          # tall, opaque blue, and
    rgba[:, :, 2:] = 255                                            # transparent in its top third
    rgba[:12, :, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "tall" / "blue.png")
    # Rows in sorted path order: tall/blue.png, wide/thirds.png.
    padded = load_folder(tmp_path, 12, 3, fit="pad").images
    cropped = load_folder(tmp_path, 12, 3, fit="crop").images
    tall, wide = padded
    # Wide: the picture fills rows 4-7 (a 12x4 band, centred), white above and below; all three
    # colours are still there (the crop keeps only the green middle).
    assert (wide[:4] == 255).all() and (wide[8:] == 255).all()
    assert np.abs(wide[4:8, :2] - RED).max() <= 8 and np.abs(wide[4:8, -2:] - BLUE).max() <= 8
    assert np.abs(cropped[1][:, 3:-3] - GREEN).max() <= 8
    # Tall: a 4x12 column at columns 4-7; its transparent top third and the padding are white.
    assert (tall[:, :4] == 255).all() and (tall[:, 8:] == 255).all()
    # (Lanczos at 3x reaches 3 output rows: row 0 sees only the transparent part, rows 6+ only
    # the opaque part.)
    assert (tall[0, 4:8] == 255).all() and np.abs(tall[6:, 4:8] - BLUE).max() <= 2
    # A square picture is the same either way.
    Image.fromarray(rgba).resize((24, 24)).save(tmp_path / "wide" / "square.png")  # row 1 now
    np.testing.assert_array_equal(load_folder(tmp_path, 12, 3, fit="pad").images[1],
                                  load_folder(tmp_path, 12, 3, fit="crop").images[1])


def test_transparency_composited_on_white(loaded):
    rgba = image(loaded, "cats/rgba.png")
    assert (rgba[:, :4] == 255).all()                          # fully transparent -> white
    assert np.abs(rgba[:, -4:] - BLUE).max() <= 2
    palette = image(loaded, "cats/palette.png")
    assert (palette[:4] == 255).all()                          # transparent palette index -> white
    assert np.abs(palette[-4:] - RED).max() <= 2
    la = image(loaded, "cats/la.png")
    assert (la[:, :4] == 255).all()
    assert np.abs(la[:, -4:] - 50).max() <= 2


def test_16_bit_scaled_not_clipped(loaded):
    gray = image(loaded, "cats/gray16.png")
    assert (gray[:6] == 255).all()                             # 65535 -> 255
    assert np.abs(gray[-6:] - 128).max() <= 1                  # 32768 -> 128 (clipping would give 255)
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()


def test_formats_decided_by_content(loaded):
    assert np.abs(image(loaded, "cats/anim.gif") - RED).max() <= 2          # first GIF frame
    leaf = "cats/nested/deeper/leaf.webp" if HAVE_WEBP else "cats/nested/deeper/leaf.png"
    assert np.abs(image(loaded, leaf) - (10, 200, 30)).max() <= 2          # nested folder, WebP
    assert np.abs(image(loaded, "dogs/scan.tiff") - RED).max() <= 2         # CMYK TIFF
    assert np.abs(image(loaded, "dogs/really_png.jpg") - (7, 77, 177)).max() == 0
    assert np.abs(image(loaded, "dogs/png_named.txt") - (200, 100, 50)).max() == 0


def test_exif_orientation_applied(loaded):
    # Stored 60 wide x 30 tall, red top / blue bottom, orientation 6 (rotate 90 degrees clockwise):
    # displayed 30 x 60 with red on the RIGHT (unrotated: red on top; orientation 8: red on the left).
    rotated = image(loaded, "dogs/exif6.jpg")
    assert np.abs(rotated[2:-2, -5:] - RED).max() < 40
    assert np.abs(rotated[2:-2, :5] - BLUE).max() < 40


def test_junk_skipped_with_reasons(loaded, art):
    got = reasons(loaded, art)
    assert got["dogs/empty.jpg"] == "empty file"
    assert got["dogs/notes.txt"] == "not an image"
    assert got["dogs/corrupt.png"].startswith("truncated or corrupt")
    assert got["dogs/truncated.jpg"].startswith("truncated or corrupt")
    assert "truncated" in got["dogs/truncated.jpg"]
    assert got["dogs/.DS_Store"] == "hidden file"
    assert got["dogs/.ipynb_checkpoints"].startswith("hidden folder")
    assert not any(".ipynb_checkpoints/" in path for path in got)   # reported once, not walked into
    assert got["dogs/broken.png"] == "broken link"
    assert got["dogs/again"].startswith("folder already searched")
    assert got["zebras/readme.txt"] == "not an image"
    assert got["zebras/empty.png"] == "empty file"
    assert "dropped" in got["zebras"] and "zebras" in got["zebras"]
    assert got["loose.png"].startswith("loose file")
    assert got[".DS_Store"] == "hidden file"
    assert len(got) == len(loaded.skipped) == 13
    assert all(os.path.isabs(path) or path.startswith(str(art)) for path, _ in loaded.skipped)


def test_skipped_report(loaded):
    report = skipped_report(loaded.skipped, limit=3)
    assert report.startswith(f"Skipped {len(loaded.skipped)} ")
    for path, reason in loaded.skipped[:3]:
        assert path in report and reason in report
    assert loaded.skipped[3][0] not in report
    assert f"and {len(loaded.skipped) - 3} more" in report
    assert "\n" not in report
    assert skipped_report(()) == "No files were skipped."


def test_grayscale_and_deterministic(art, loaded):
    gray = load_folder(str(art), R, 1, num_workers=3)
    assert gray.images.shape == (len(loaded.images), R, R, 1) and gray.images.dtype == np.uint8
    assert gray.class_names == loaded.class_names
    np.testing.assert_array_equal(gray.labels, loaded.labels)
    index = CAT_FILES.index("gray16.png")
    assert (gray.images[index, :4] == 255).all()
    assert np.abs(gray.images[index, -4:].astype(int) - 128).max() <= 1
    again = load_folder(art, R, 3, num_workers=1)               # serial, and a pathlib.Path
    np.testing.assert_array_equal(again.images, loaded.images)
    np.testing.assert_array_equal(again.labels, loaded.labels)
    assert again.skipped == loaded.skipped and again.class_names == loaded.class_names
    default_workers = load_folder(str(art), R, 3)
    np.testing.assert_array_equal(default_workers.images, loaded.images)


def test_unconditional_folder(tmp_path):
    halves((50, 30), RED, BLUE).save(tmp_path / "b.png")
    solid((20, 40), GREEN).save(tmp_path / "a.jpg")
    solid((8, 8), (1, 2, 3)).save(tmp_path / "c.gif")
    (tmp_path / "d.txt").write_text("not me")
    result = load_folder(str(tmp_path), 8, 3, num_workers=2)
    assert result.class_names == ()
    assert result.images.shape == (3, 8, 8, 3)
    assert result.labels.tolist() == [0, 0, 0]
    assert np.abs(result.images[0].astype(int) - GREEN).max() <= 3  # sorted: a.jpg first
    assert [reason for _, reason in result.skipped] == ["not an image"]


def test_upscales_small_images(tmp_path):
    solid((4, 4), (9, 99, 199)).save(tmp_path / "tiny.png")
    result = load_folder(tmp_path, 32, 3)
    assert result.images.shape == (1, 32, 32, 3)
    assert np.abs(result.images.astype(int) - (9, 99, 199)).max() <= 1


def test_decompression_bomb_skipped(tmp_path, monkeypatch):
    solid((5, 5), RED).save(tmp_path / "small.png")
    solid((40, 40), BLUE).save(tmp_path / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)          # 1600 pixels > 2 x 100: a "bomb"
    result = load_folder(tmp_path, 8, 3, num_workers=2)
    assert len(result.images) == 1
    assert len(result.skipped) == 1 and "decompression-bomb" in result.skipped[0][1]


def test_unreadable_file_skipped(tmp_path, monkeypatch):
    from jaxgan import fileio
    from jaxgan.data import folder

    solid((5, 5), RED).save(tmp_path / "ok.png")
    solid((5, 5), RED).save(tmp_path / "locked.png")

    def fake_open(file):  # as if chmod 000 (which root would ignore)
        if str(file).endswith("locked.png"):
            raise PermissionError(13, "Permission denied", str(file))
        return fileio.open_regular(file)

    monkeypatch.setattr(folder, "open_regular", fake_open)  # (every image file is opened so)
    result = load_folder(tmp_path, 8, 3)
    assert len(result.images) == 1
    assert result.skipped == ((str(tmp_path / "locked.png"), "unreadable: Permission denied"),)


def test_many_images_grow_the_buffer(tmp_path):
    for i in range(300):  # more than the first buffer holds; every other file is a caption
        solid((6, 6), (i % 256, 0, 0)).save(tmp_path / f"{i:03d}.png")
        (tmp_path / f"{i:03d}.txt").write_text("a caption")
    result = load_folder(tmp_path, 4, 3, num_workers=2)
    assert result.images.shape == (300, 4, 4, 3) and result.labels.shape == (300,)
    assert result.images[:, 0, 0, 0].tolist() == [i % 256 for i in range(300)]
    assert len(result.skipped) == 300


def test_class_folders_of_only_junk_raise(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.txt").write_text("text")
    (tmp_path / "b").mkdir()
    (tmp_path / "loose.png").write_bytes(png_bytes())
    with pytest.raises(UserError, match="No usable image") as info:
        load_folder(tmp_path, 8, 3)
    assert str(tmp_path) in str(info.value) and "loose file" in str(info.value)


@pytest.mark.parametrize("case", ["missing", "file", "junk", "empty", "hidden_only"])
def test_errors_name_the_path(tmp_path, case):
    path = tmp_path / "data"
    if case == "file":
        path.write_bytes(png_bytes())
    elif case != "missing":
        path.mkdir()
    if case == "junk":
        (path / "a.txt").write_text("hello")
        (path / "b.png").write_bytes(b"")
        (path / "c.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    if case == "hidden_only":
        (path / ".DS_Store").write_bytes(b"x")
    with pytest.raises(UserError) as info:
        load_folder(str(path), 8, 3)
    message = str(info.value)
    assert str(path) in message
    expected = {"missing": "does not exist", "file": "not a folder", "junk": "Skipped 3 files",
                "empty": "is empty", "hidden_only": "hidden file"}[case]
    assert expected in message
    if case == "junk":
        assert "not an image" in message and "empty file" in message and "corrupt" in message


@pytest.mark.parametrize("kwargs, message", [
    (dict(resolution=0), "resolution must be a positive whole number, got 0"),
    (dict(channels=4), "1 (grayscale) or 3 (RGB) channels, got 4"),
    (dict(num_workers=0), "num_workers must be at least 1, got 0"),
])
def test_bad_arguments(tmp_path, kwargs, message):
    solid((5, 5), RED).save(tmp_path / "ok.png")
    args = dict(resolution=8, channels=3) | kwargs
    with pytest.raises(UserError, match=re.escape(message)):
        load_folder(tmp_path, **args)
