"""The gallery without a browser: statistics, the image set, the HTTP API's checks, the report."""
import concurrent.futures
import http.client
import io
import json
import math
import pathlib
import urllib.parse

import numpy as np
import pytest
from gallery_support import copy_run, serving, trained_run
from PIL import Image

from jaxgan.gallery import __main__ as cli, imageset, report, store as store_lib
from jaxgan.gallery.server import Gallery


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return trained_run(tmp_path_factory)


@pytest.fixture(scope="module")
def gallery(run, tmp_path_factory):
    _, sampler = run
    return Gallery(sampler, copy_run(tmp_path_factory, "gallery-api"), seed=0, num=20, num_trials=6)


@pytest.fixture(scope="module")
def base(gallery):
    with serving(gallery) as url:
        yield url


def call(base, method, path, body=None, headers=None, raw=None):
    """(status, parsed JSON or bytes) of one request over a fresh connection."""
    url = urllib.parse.urlsplit(base)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    all_headers = {"Content-Type": "application/json"} if data is not None else {}
    all_headers.update(headers or {})
    connection.request(method, path, body=data, headers=all_headers)
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    if response.getheader("Content-Type", "").startswith("application/json"):
        return response.status, json.loads(payload)
    return response.status, payload


def count_rows(gallery):
    return len(gallery.store.rows())


def made_files(gallery):
    out = pathlib.Path(gallery.workdir) / "gallery"
    return sorted(out.iterdir()) if out.exists() else []


# ---- statistics, against values computed by hand
def test_mean_ci_by_hand():
    # 1..5: mean 3, sd sqrt(2.5), t(0.975, 4) = 2.776445 -> 3 +- 2.776445 * 1.581139 / sqrt(5)
    ci = report.mean_ci([1, 2, 3, 4, 5])
    assert (ci.n, ci.mean) == (5, 3.0)
    assert ci.low == pytest.approx(3 - 1.963243, abs=1e-5)
    assert ci.high == pytest.approx(3 + 1.963243, abs=1e-5)
    one = report.mean_ci([4])
    assert one.mean == 4 and math.isnan(one.low)


def test_wilson_by_hand():
    # 8 of 10: centre (0.8 + z^2/20) / (1 + z^2/10), half z sqrt(0.016 + z^2/400) / (1 + z^2/10)
    p = report.wilson(8, 10)
    assert (p.k, p.n, p.rate) == (8, 10, 0.8)
    assert (p.low, p.high) == (pytest.approx(0.490162, abs=1e-5), pytest.approx(0.943318, abs=1e-5))
    zero = report.wilson(0, 10)  # z^2 / (n + z^2) = 3.841459 / 13.841459
    assert (zero.low, zero.high) == (0.0, pytest.approx(0.277533, abs=1e-5))
    assert math.isnan(report.wilson(0, 0).rate)


def _row(rater, kind, image_id, value, source="generated", class_name="0", step=2):
    return {"rater": rater, "kind": kind, "image_id": image_id, "value": value, "source": source,
            "class_name": class_name, "class_index": None if class_name is None else int(class_name),
            "step": step, "seed": 1, "real_index": None, "nonce": f"n{id(image_id)}", "time": 0.0}


def test_summary_counts_latest_rating_and_first_trial_answer():
    rows = [
        _row("ann", "rating", "a", 2), _row("ann", "rating", "a", 5),  # re-rated: 5 counts
        _row("bob", "rating", "a", 4), _row("bob", "rating", "b", 1, class_name="1"),
        _row("ann", "favourite", "a", 1), _row("bob", "favourite", "a", 1),
        _row("bob", "favourite", "b", 1, class_name="1"), _row("bob", "favourite", "b", 0, class_name="1"),
        _row("ann", "copied", "b", 1, class_name="1"),
        # trials: generated said real (fooled) x2 of 3; real said generated x1 of 2
        _row("ann", "trial", "trial:0", 1), _row("ann", "trial", "trial:1", 1),
        _row("ann", "trial", "trial:2", 0, class_name="1"),
        _row("bob", "trial", "trial:0", 0, source="real"), _row("bob", "trial", "trial:1", 1, source="real"),
    ]
    summary = report.summarise(rows)
    assert summary.raters == 2 and summary.judgements == len(rows)
    assert (summary.ratings["0"].n, summary.ratings["0"].mean) == (2, 4.5)
    assert (summary.ratings["1"].n, summary.ratings["1"].mean) == (1, 1.0)
    assert (summary.ratings[report.ALL].n, summary.ratings[report.ALL].mean) == (3, pytest.approx(10 / 3))
    assert summary.raters_per_class == {"0": 2, "1": 1, report.ALL: 2}
    fooled = summary.fooled_generated[report.ALL]
    assert (fooled.k, fooled.n) == (2, 3)
    assert (summary.fooled_generated["0"].k, summary.fooled_generated["0"].n) == (2, 2)
    assert (summary.fooled_real[report.ALL].k, summary.fooled_real[report.ALL].n) == (1, 2)
    assert (summary.hype_error.k, summary.hype_error.n) == (3, 5)
    assert [(row["image_id"], count) for row, count in summary.favourites] == [("a", 2)]
    assert [(row["image_id"], count) for row, count in summary.copied] == [("b", 1)]
    text = "\n".join(report.format_report(summary))
    assert "66.7% [20.8, 93.9] (2/3)" in text  # Wilson 2/3
    assert "HYPE error" in text and "(3/5)" in text


# ---- the image set
def test_image_set_is_a_pure_function_of_step_and_seed(run, gallery, tmp_path):
    _, sampler = run
    names = sampler.class_names
    first = imageset.gallery_images(sampler.step, 0, 20, names)
    assert first == imageset.gallery_images(sampler.step, 0, 20, names)
    assert [im.class_index for im in first] == [c for c in range(10) for _ in range(2)]
    assert len({im.id for im in first}) == 20
    other = imageset.gallery_images(sampler.step, 1, 20, names)
    assert {im.seed for im in other}.isdisjoint({im.seed for im in first})
    # a "restarted" server (a new Gallery on the same run) serves the same bytes under each id
    again = Gallery(sampler, tmp_path, seed=0, num=20, num_trials=6)
    assert again.png == gallery.png and again.real_png == gallery.real_png
    assert again.trial_generated_png == gallery.trial_generated_png
    assert [im.id for im in again.images] == [im.id for im in gallery.images]


def test_trial_plan_fixed_per_rater_half_real():
    plan = imageset.trial_plan("ann", 0, 2, 10, 20, 20)
    assert plan == imageset.trial_plan("ann", 0, 2, 10, 20, 20)
    assert sum(t.source == "real" for t in plan) == 5
    assert len({(t.source, t.index) for t in plan}) == 10  # no image twice
    assert plan != imageset.trial_plan("bob", 0, 2, 10, 20, 20)


def test_real_and_generated_look_alike_as_files(gallery):
    plan = gallery.plan("ann")
    real = next(t for t in plan if t.source == "real")
    made = next(t for t in plan if t.source == "generated")
    files = [gallery.trial_png("ann", t.position) for t in (real, made)]
    pils = [Image.open(io.BytesIO(f)) for f in files]
    assert {(p.size, p.mode, p.format) for p in pils} == {((128, 128), "L", "PNG")}
    for f in files:  # IHDR, IDAT(s), IEND and nothing else: no text, time, gamma or profile
        chunks, offset = set(), 8
        while offset < len(f):
            length = int.from_bytes(f[offset:offset + 4], "big")
            chunks.add(f[offset + 4:offset + 8])
            offset += 12 + length
        assert chunks == {b"IHDR", b"IDAT", b"IEND"}


# ---- the HTTP API
def _judge(image, value=3, kind="rating", rater="ann", nonce="nonce-0001"):
    return {"rater": rater, "image": image, "kind": kind, "value": value, "nonce": nonce}


BAD_REQUESTS = [
    # (method, path, body or raw bytes, headers, status, words in the error)
    ("POST", "/api/judge", _judge("s2-c0-n999"), {}, 404, "no image"),
    ("POST", "/api/judge", _judge("../../etc/passwd"), {}, 404, "no image"),
    ("POST", "/api/judge", _judge("s2-c0-n0", 0), {}, 400, "1 to 5"),
    ("POST", "/api/judge", _judge("s2-c0-n0", 6), {}, 400, "1 to 5"),
    ("POST", "/api/judge", _judge("s2-c0-n0", 3.5), {}, 400, "1 to 5"),
    ("POST", "/api/judge", _judge("s2-c0-n0", True), {}, 400, "1 to 5"),
    ("POST", "/api/judge", _judge("s2-c0-n0", 1, kind="favourite"), {}, 400, "true or false"),
    ("POST", "/api/judge", _judge("s2-c0-n0", kind="delete"), {}, 400, "kind"),
    ("POST", "/api/judge", _judge("s2-c0-n0", rater=""), {}, 400, "rater"),
    ("POST", "/api/judge", _judge("s2-c0-n0", rater="x" * 41), {}, 400, "rater"),
    ("POST", "/api/judge", _judge("s2-c0-n0", rater="<script>"), {}, 400, "rater"),
    ("POST", "/api/judge", _judge("s2-c0-n0", nonce="1"), {}, 400, "nonce"),
    ("POST", "/api/judge", {**_judge("s2-c0-n0"), "extra": 1}, {}, 400, "unknown extra"),
    ("POST", "/api/judge", {"rater": "ann"}, {}, 400, "missing"),
    ("POST", "/api/judge", b"[1, 2]", {}, 400, "JSON object"),
    ("POST", "/api/judge", b"{not json", {}, 400, "not valid JSON"),
    ("POST", "/api/judge", b"\xff\xfe", {}, 400, "not valid JSON"),
    ("POST", "/api/judge", b"[" * 1020 + b"]" * 1020, {}, 400, "not valid JSON"),
    ("POST", "/api/judge", b'{"rater": "ann"', {"Content-Length": "9999999"}, 413, "over 2048"),
    ("POST", "/api/judge", b"{}", {"Content-Length": "-1"}, 411, "Content-Length"),
    ("POST", "/api/judge", b"x" * 5000, {}, 413, "over 2048 bytes"),
    ("POST", "/api/judge", json.dumps(_judge("s2-c0-n0")).encode(), {"Content-Type": "text/plain"},
     415, "application/json"),
    ("POST", "/api/judge?rater=ann", _judge("s2-c0-n0"), {}, 400, "JSON body"),
    ("POST", "/api/trial", {"rater": "ann", "position": 6, "answer": "real", "nonce": "nonce-0002"},
     {}, 400, "position"),
    ("POST", "/api/trial", {"rater": "ann", "position": -1, "answer": "real", "nonce": "nonce-0002"},
     {}, 400, "position"),
    ("POST", "/api/trial", {"rater": "ann", "position": 0, "answer": "maybe", "nonce": "nonce-0002"},
     {}, 400, "real or generated"),
    ("POST", "/api/redraw", {"image": "s2-c0-n0", "truncation": 0}, {}, 400, "truncation"),
    ("POST", "/api/redraw", {"image": "s2-c0-n0", "truncation": 1.5}, {}, 400, "truncation"),
    ("POST", "/api/redraw", b'{"image": "s2-c0-n0", "truncation": NaN}', {}, 400, "truncation"),
    ("POST", "/api/interpolate", {"a": "s2-c0-n0", "b": "s2-c1-n2", "frames": 1, "truncation": 1},
     {}, 400, "frames"),
    ("POST", "/api/interpolate", {"a": "s2-c0-n0", "b": "s2-c1-n2", "frames": 500, "truncation": 1},
     {}, 400, "frames"),
    ("POST", "/api/nothing", _judge("s2-c0-n0"), {}, 404, "no such"),
    ("PUT", "/api/judge", _judge("s2-c0-n0"), {}, 405, "not allowed"),
    ("DELETE", "/api/judge", None, {}, 405, "not allowed"),
    ("GET", "/img/s2-c0-n999.png", None, {}, 404, "no image"),
    ("GET", "/img/..%2F..%2Fetc%2Fpasswd.png", None, {}, 404, "no such page"),
    ("GET", "/static/server.py", None, {}, 404, "no such file"),
    ("GET", "/static/../server.py", None, {}, 404, ""),
    ("GET", "/trial/99.png?rater=ann", None, {}, 404, "trial position"),
    ("GET", "/trial/0.png", None, {}, 400, "rater"),
    ("GET", "/api/state?rater=ann&rater=bob", None, {}, 400, "repeated"),
    ("GET", "/made/0", None, {}, 404, "nothing made"),
    ("GET", "/api/set", None, {"Host": "attacker.example:80"}, 421, "Host"),
]


@pytest.mark.parametrize("method,path,body,headers,status,words", BAD_REQUESTS,
                         ids=[f"{r[0]} {r[1][:30]} {r[4]}" for r in BAD_REQUESTS])
def test_bad_requests_are_rejected_and_write_nothing(gallery, base, method, path, body, headers,
                                                     status, words):
    before = count_rows(gallery), made_files(gallery)
    raw = body if isinstance(body, bytes) else None
    got, answer = call(base, method, path, None if raw is not None else body, headers, raw)
    assert got == status, answer
    assert words in answer["error"] and "Traceback" not in answer["error"]
    assert (count_rows(gallery), made_files(gallery)) == before


def test_judgements_stored_once_and_read_back(gallery, base):
    image = gallery.images[3].id
    body = _judge(image, 4, rater="carol", nonce="carol-000001")
    assert call(base, "POST", "/api/judge", body) == (200, {"stored": True})
    assert call(base, "POST", "/api/judge", body) == (200, {"stored": False})  # a retry
    assert call(base, "POST", "/api/judge", _judge(image, True, "favourite", "carol", "carol-000002"))[0] == 200
    assert call(base, "POST", "/api/judge", _judge(image, 2, rater="carol", nonce="carol-000003"))[0] == 200
    assert call(base, "GET", "/api/state?rater=carol") == (200, {image: {"rating": 2, "favourite": 1}})
    rows = gallery.store.rows("WHERE rater = 'carol'")
    assert [(r["kind"], r["value"], r["seed"], r["class_index"], r["step"]) for r in rows] == [
        ("rating", 4, 3, 1, 2), ("favourite", 1, 3, 1, 2), ("rating", 2, 3, 1, 2)]


def test_trials_first_answer_counts_and_score(gallery, base):
    plan = gallery.plan("dave")
    for trial in plan:
        said = "real" if trial.position % 2 else "generated"
        status, state = call(base, "POST", "/api/trial", {
            "rater": "dave", "position": trial.position, "answer": said,
            "nonce": f"dave-trial-{trial.position}"})
        assert status == 200
    status, answer = call(base, "POST", "/api/trial", {
        "rater": "dave", "position": 0, "answer": "real", "nonce": "dave-again-0"})
    assert (status, answer["error"]) == (409, "trial 0 is already answered")
    correct = sum((t.position % 2 == 1) == (t.source == "real") for t in plan)
    assert state["score"]["correct"] == correct and state["score"]["total"] == 6
    rows = gallery.store.trials("dave", gallery.step)
    assert len(rows) == 6 and {r["source"] for r in rows} == {"real", "generated"}
    assert all((r["real_index"] is None) == (r["source"] == "generated") for r in rows)
    # generated trial images are never the gallery's own (a rater may have just seen those)
    trial_seeds = {r["seed"] for r in rows if r["source"] == "generated"}
    assert trial_seeds and trial_seeds.isdisjoint({im.seed for im in gallery.images})
    gallery_files = set(gallery.png)
    assert not any(gallery.trial_png("dave", t.position) in gallery_files for t in plan)


def test_concurrent_raters_lose_nothing(gallery, base):
    def rater(k):
        for i in range(10):
            body = _judge(gallery.images[i].id, 1 + (i + k) % 5, rater=f"load{k}",
                          nonce=f"load-{k}-{i:04d}")
            assert call(base, "POST", "/api/judge", body)[0] == 200
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(rater, range(8)))
    rows = gallery.store.rows("WHERE rater LIKE 'load%'")
    assert len(rows) == 80 and len({r["nonce"] for r in rows}) == 80


def test_redraw_and_walk_saved_with_provenance(gallery, base):
    from jaxgan.art import watermark
    status, made = call(base, "POST", "/api/redraw", {"image": gallery.images[0].id, "truncation": 0.5})
    assert status == 200
    image = Image.open(made["path"])
    assert image.text["Seed"] == "0" and image.text["Truncation"] == "0.5"
    assert image.text["Comment"] == "AI-generated" and image.text["Step"] == "2"
    assert watermark.detect(np.asarray(image)).marked
    status, png = call(base, "GET", made["url"])
    assert status == 200 and png == open(made["path"], "rb").read()
    status, walk = call(base, "POST", "/api/interpolate", {
        "a": gallery.images[0].id, "b": gallery.images[4].id, "frames": 3, "truncation": 1})
    assert status == 200 and Image.open(walk["path"]).n_frames == 4  # there and back


def test_report_cli(run, tmp_path, capsys):
    workdir, _ = run
    empty = tmp_path / "empty"
    assert cli.main(["report", "--workdir", str(empty)]) == 1
    assert "no judgements yet" in capsys.readouterr().err
    empty.mkdir()
    (empty / "ratings.sqlite").write_bytes(b"not a database, just bytes" * 100)
    assert cli.main(["report", "--workdir", str(empty)]) == 1
    assert "cannot open the judgements in" in capsys.readouterr().err
    assert cli.main(["report", "--workdir", str(tmp_path), "--csv", str(tmp_path / "no" / "x.csv")]) == 1
    assert "its folder does not exist" in capsys.readouterr().err
    store = store_lib.Store(store_lib.db_path(tmp_path))
    image = imageset.gallery_images(2, 0, 20, [str(d) for d in range(10)])
    for k, (rater, im, value) in enumerate([("ann", 0, 5), ("bob", 0, 3), ("ann", 2, 4)]):
        g = image[im]
        store.add(store_lib.Judgement(rater, "rating", g.id, "generated", g.seed, g.class_index,
                                      g.class_name, 2, None, value), f"nonce-{k:04d}")
    g = image[2]
    store.add(store_lib.Judgement("ann", "favourite", g.id, "generated", g.seed, g.class_index,
                                  g.class_name, 2, None, 1), "nonce-fav1")
    import shutil
    shutil.copytree(workdir / "checkpoints", tmp_path / "checkpoints")
    csv_path = tmp_path / "all.csv"
    assert cli.main(["report", "--workdir", str(tmp_path), "--csv", str(csv_path)]) == 0
    out = capsys.readouterr().out
    assert "2 raters, 4 judgements." in out
    # class 0: ratings 5 and 3 -> mean 4, t(0.975, 1) = 12.706205 * sd sqrt(2) / sqrt(2)
    assert "4.00 [-8.71, 16.71]" in out
    assert "Favourites: s2-c1-n2 (x1)" in out
    sheet = Image.open(tmp_path / "gallery" / "favourites.png")
    assert sheet.text["Comment"] == "AI-generated" and "s2-c1-n2" in sheet.text["Images"]
    lines = csv_path.read_text().splitlines()
    assert lines[0].split(",") == list(store_lib.COLUMNS) and len(lines) == 5


def test_serve_cli_rejects_bad_flags(run, capsys):
    workdir, _ = run
    assert cli.main(["--workdir", str(workdir), "--num", "0"]) == 1
    assert "--num must be 1-1024" in capsys.readouterr().err
    assert cli.main(["--workdir", str(workdir / "nothing")]) == 1
    assert "no checkpoint found" in capsys.readouterr().err


KILLED_WRITER = """
import sys
from jaxgan.gallery import store as store_lib
store = store_lib.Store(sys.argv[1])
for k in range(100000):
    store.add(store_lib.Judgement("kim", "rating", "s2-c0-n0", "generated", 0, 0, "0", 2, None,
                                  1 + k % 5), f"killed-{k:06d}")
    print(k, flush=True)  # acknowledged: committed
"""


def test_acknowledged_judgements_survive_a_kill(tmp_path):
    import signal
    import subprocess
    import sys
    path = tmp_path / "ratings.sqlite"
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)],
                              stdout=subprocess.PIPE, text=True)
    acknowledged = -1
    while acknowledged < 40:
        acknowledged = int(writer.stdout.readline())
    writer.send_signal(signal.SIGKILL)
    writer.wait(10)
    acknowledged = max([acknowledged] + [int(line) for line in writer.stdout.read().split()])
    store = store_lib.Store(path)
    rows = store.rows()
    # everything acknowledged is there, at most the one in flight besides, no gaps, no doubles
    assert acknowledged + 1 <= len(rows) <= acknowledged + 2
    assert [r["nonce"] for r in rows] == [f"killed-{k:06d}" for k in range(len(rows))]


def test_real_images_of_a_folder_are_the_pixels_training_sees(tmp_path):
    """Only the shown rows are decoded, and they equal the rows of the training loader's set."""
    from conftest import tiny_config

    from jaxgan import data as data_lib
    rng = np.random.default_rng(0)
    for name, count in (("cats", 5), ("dogs", 7)):
        (tmp_path / name).mkdir()
        for i in range(count):
            size = (int(rng.integers(20, 60)), int(rng.integers(20, 60)))
            Image.fromarray(rng.integers(0, 256, (*size, 3), np.uint8)).save(tmp_path / name / f"{i}.png")
    config = tiny_config("folder", **{"data.resolution": 16})
    config.data.source = f"folder:{tmp_path}"
    shown = imageset.gallery_images(4, 0, 6, ("cats", "dogs"))
    rows, pixels, labels = imageset.load_real_images(config.data, shown, seed=0, step=4)
    assert pixels.shape == (6, 16, 16, 3) and list(labels) == [0, 0, 0, 1, 1, 1]
    whole = data_lib.load(config.data)  # what training holds in memory
    np.testing.assert_array_equal(pixels, whole.images[np.asarray(rows)])
    np.testing.assert_array_equal(labels, whole.labels[np.asarray(rows)])
    assert config.data.host_cache_mb == 4096  # the caller's config is left as it was
