"""The gallery's web server: rating pages, blind trials, re-drawing favourites.

Why the standard library's ThreadingHTTPServer and no web framework: the server answers a dozen
fixed routes for a handful of people on one machine; a framework would add a dependency (and its
own request parsing to audit) to every jaxgan install for no feature we need. What a framework
would otherwise do for us is done explicitly here: every route is listed in `Handler`, every
parameter is checked by a `_check_*` function, bodies are capped at MAX_BODY_BYTES, and any
unexpected error becomes a plain 500 without a traceback (the traceback goes to the server log).

Images are served by id only: a gallery id is looked up in the image set, a trial image by the
rater's position in their own trial plan, a re-drawn image by its index in this server's list;
no path from a request ever reaches the file system.

Cross-site safety: the server binds 127.0.0.1 by default; it answers only requests whose Host
header names it (so a web page cannot reach it through DNS rebinding), and every write is a POST
with Content-Type application/json, which a page on another origin cannot send without a CORS
preflight, which this server never grants.
"""
from __future__ import annotations

import dataclasses
import http
import http.server
import importlib.resources
import json
import logging
import math
import os
import re
import threading
import urllib.parse

import numpy as np

from jaxgan.gallery import imageset, making, store as store_lib

MAX_BODY_BYTES = 2048
MAX_FRAMES = 48
STATIC_FILES = {  # name -> content type; nothing else under static/ is served
    "index.html": "text/html; charset=utf-8", "trials.html": "text/html; charset=utf-8",
    "gallery.css": "text/css; charset=utf-8", "common.js": "text/javascript; charset=utf-8",
    "gallery.js": "text/javascript; charset=utf-8", "trials.js": "text/javascript; charset=utf-8",
}
RATER = re.compile(r"^[\w .@'-]{1,40}$")
NONCE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
FLAG_KINDS = ("favourite", "copied")
log = logging.getLogger("jaxgan.gallery")


class RequestError(Exception):
    """A bad request: answered with `status` and the message, nothing written."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclasses.dataclass
class Made:
    path: str
    content_type: str


class Gallery:
    """What the server serves, independent of HTTP: the image set, the trials, the store."""

    def __init__(self, sampler, workdir, seed: int = 0, num: int = 64, num_trials: int = 20,
                 real=None):
        self.sampler, self.workdir, self.seed = sampler, os.fspath(workdir), seed
        self.step, self.num_trials = int(sampler.step), num_trials
        self.images = imageset.gallery_images(self.step, seed, num, sampler.class_names)
        self.by_id = {image.id: (i, image) for i, image in enumerate(self.images)}
        self.scale = imageset.display_scale(sampler.image_shape[0])
        self._generate_lock = threading.Lock()  # one generator call at a time
        self.png = self._pngs(self.images)
        # the trials' generated images: as many as the gallery's, same classes, other seeds
        self.trial_images = imageset.gallery_images(self.step, seed, num, sampler.class_names,
                                                    for_trials=True)
        self.trial_generated_png = self._pngs(self.trial_images)
        if real is None:
            real = imageset.load_real_images(sampler.config.data, self.images, seed, self.step)
        self.real_rows, real_pixels, self.real_labels = real
        self.real_png = [imageset.png_bytes(p, self.scale) for p in real_pixels]
        self.store = store_lib.Store(store_lib.db_path(self.workdir))
        self.made: list[Made] = []
        self._made_lock = threading.Lock()

    def _pngs(self, images) -> list[bytes]:
        pixels = self._generate([im.seed for im in images], [im.class_index for im in images])
        return [imageset.png_bytes(p, self.scale) for p in pixels]

    def _generate(self, seeds, classes, truncation: float = 1.0) -> np.ndarray:
        labels = None if self.sampler.num_classes == 0 else list(classes)
        with self._generate_lock:
            return self.sampler.generate(seeds, labels, truncation)

    # ---- reads
    def summary(self) -> dict:
        return {"step": self.step, "class_names": list(self.sampler.class_names),
                "num_trials": self.num_trials, "display_size": self.scale * self.sampler.image_shape[0],
                "images": [{"id": im.id, "seed": im.seed, "class_index": im.class_index,
                            "class_name": im.class_name} for im in self.images]}

    def image(self, image_id: str) -> imageset.GalleryImage:
        found = self.by_id.get(image_id)
        if found is None:
            raise RequestError(404, f"no image {image_id!r} in this gallery")
        return found[1]

    def image_png(self, image_id: str) -> bytes:
        self.image(image_id)
        return self.png[self.by_id[image_id][0]]

    def plan(self, rater: str):
        return imageset.trial_plan(rater, self.seed, self.step, self.num_trials,
                                   len(self.real_png), len(self.trial_images))

    def trial(self, rater: str, position: int) -> imageset.Trial:
        if not 0 <= position < self.num_trials:
            raise RequestError(404, f"trial position must be 0-{self.num_trials - 1}")
        return self.plan(rater)[position]

    def trial_png(self, rater: str, position: int) -> bytes:
        trial = self.trial(rater, position)
        return (self.real_png if trial.source == "real" else self.trial_generated_png)[trial.index]

    def state(self, rater: str) -> dict:
        return self.store.current(rater, self.step)

    def trial_state(self, rater: str) -> dict:
        answers = self.store.trials(rater, self.step)
        answered = sorted(int(row["image_id"].split(":")[1]) for row in answers)
        result = {"num_trials": self.num_trials, "answered": answered, "score": None}
        if len(answered) == self.num_trials:
            result["score"] = _trial_score(answers)
        return result

    # ---- writes
    def judge(self, rater: str, image_id: str, kind: str, value: int, nonce: str) -> bool:
        image = self.image(image_id)
        return self.store.add(store_lib.Judgement(
            rater=rater, kind=kind, image_id=image.id, source="generated", seed=image.seed,
            class_index=image.class_index, class_name=image.class_name, step=self.step,
            real_index=None, value=value), nonce)

    def answer_trial(self, rater: str, position: int, said_real: bool, nonce: str) -> dict:
        trial = self.trial(rater, position)
        if trial.source == "real":
            label = int(self.real_labels[trial.index])
            class_index = label if self.sampler.num_classes else None
            fields = dict(seed=None, real_index=int(self.real_rows[trial.index]))
        else:
            image = self.trial_images[trial.index]
            class_index = image.class_index
            fields = dict(seed=image.seed, real_index=None)
        class_name = None if class_index is None else self.sampler.class_names[class_index]
        try:
            self.store.add(store_lib.Judgement(
                rater=rater, kind="trial", image_id=f"trial:{position}", source=trial.source,
                class_index=class_index, class_name=class_name, step=self.step,
                value=int(said_real), **fields), nonce)
        except store_lib.AlreadyAnswered:
            raise RequestError(409, f"trial {position} is already answered") from None
        return self.trial_state(rater)

    def redraw(self, image_id: str, truncation: float) -> dict:
        image = self.image(image_id)
        pixels = self._generate([image.seed], [image.class_index], truncation)[0]
        name = self._out_name(f"redraw-step{self.step}-seed{image.seed}", image.class_name,
                              f"psi{truncation:g}", "png")
        path = making.write_redraw(self.sampler, pixels, name, image.seed, image.class_name,
                                        truncation, self._out_dir())
        return self._made(path, "image/png")

    def interpolate(self, a_id: str, b_id: str, frames: int, truncation: float) -> dict:
        a, b = self.image(a_id), self.image(b_id)
        with self._generate_lock:
            pixels = self.sampler.interpolate(a.seed, b.seed, frames, a.class_index,
                                              b.class_index, truncation)
        name = self._out_name(f"walk-step{self.step}-seed{a.seed}-seed{b.seed}", None,
                              f"psi{truncation:g}", "gif")
        path = making.write_walk(self.sampler, pixels, name, (a.seed, b.seed),
                                      (a.class_name, b.class_name), truncation, self._out_dir())
        return self._made(path, "image/gif")

    def _out_dir(self) -> str:
        return os.path.join(self.workdir, "gallery")

    @staticmethod
    def _out_name(stem: str, class_name: str | None, suffix: str, extension: str) -> str:
        parts = [stem] + ([re.sub(r"[^A-Za-z0-9_.-]+", "_", class_name)] if class_name else [])
        return "-".join(parts + [suffix]) + "." + extension

    def _made(self, path: str, content_type: str) -> dict:
        with self._made_lock:
            self.made.append(Made(path, content_type))
            index = len(self.made) - 1
        return {"url": f"/made/{index}", "path": path}

    def made_file(self, index: int) -> Made:
        if not 0 <= index < len(self.made):
            raise RequestError(404, f"nothing made with number {index}")
        return self.made[index]


def _trial_score(answers) -> dict:
    correct = sum(int(row["value"]) == (row["source"] == "real") for row in answers)
    generated = [row for row in answers if row["source"] == "generated"]
    real = [row for row in answers if row["source"] == "real"]
    return {"correct": correct, "total": len(answers),
            "generated_judged_real": sum(row["value"] == 1 for row in generated),
            "generated": len(generated),
            "real_judged_generated": sum(row["value"] == 0 for row in real), "real": len(real)}


# ---- parameter checks: each returns the clean value or raises RequestError(400)
def _check_rater(value) -> str:
    if not isinstance(value, str) or not RATER.match(value.strip()):
        raise RequestError(400, "rater must be a name of 1-40 letters, digits, spaces or .@'-_")
    return value.strip()


def _check_nonce(value) -> str:
    if not isinstance(value, str) or not NONCE.match(value):
        raise RequestError(400, "nonce must be 8-64 characters of A-Z a-z 0-9 _ -")
    return value


def _check_int(value, name: str, low: int, high: int) -> int:
    if isinstance(value, str) and re.fullmatch(r"\d{1,9}", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RequestError(400, f"{name} must be a whole number from {low} to {high}")
    return value


def _check_truncation(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and 0.0 < value <= 1.0):
        raise RequestError(400, "truncation must be a number in (0, 1]")
    return float(value)


def _check_keys(body: dict, required: set) -> None:
    missing, unknown = required - body.keys(), body.keys() - required
    if missing or unknown:
        raise RequestError(400, "; ".join(
            ([f"missing {', '.join(sorted(missing))}"] if missing else []) +
            ([f"unknown {', '.join(sorted(unknown))}"] if unknown else [])))


def _static(name: str) -> bytes:
    return (importlib.resources.files("jaxgan.gallery") / "static" / name).read_bytes()


class Handler(http.server.BaseHTTPRequestHandler):
    gallery: Gallery           # set by make_server
    allowed_hosts: frozenset | None
    timeout = 60               # seconds a connection may sit idle or half-sent
    server_version = "jaxgan-gallery"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 (the base class's signature)
        log.debug("%s %s", self.address_string(), format % args)

    # ---- dispatch
    def do_GET(self):
        self._run(self._get)

    def do_POST(self):
        self._run(self._post)

    def _not_allowed(self):
        self._run(lambda *_: (_ for _ in ()).throw(RequestError(405, "method not allowed")))

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _not_allowed

    def _run(self, route):
        try:
            if self.allowed_hosts is not None and self.headers.get("Host") not in self.allowed_hosts:
                raise RequestError(421, "unexpected Host header")
            url = urllib.parse.urlsplit(self.path)
            try:
                query = urllib.parse.parse_qs(url.query, strict_parsing=bool(url.query),
                                              max_num_fields=8)
            except ValueError:
                raise RequestError(400, "malformed query string") from None
            if any(len(values) > 1 for values in query.values()):
                raise RequestError(400, "a query parameter is repeated")
            route(url.path, {key: values[0] for key, values in query.items()})
        except RequestError as error:
            if self.command != "GET":  # a body we did not read must not be taken for a request
                self.close_connection = True
            self._json({"error": str(error)}, error.status)
        except Exception:  # a bug, not the client's fault: log it, say nothing more
            log.exception("error answering %s %s", self.command, self.path)
            self._json({"error": "internal error (see the server log)"}, 500)

    def _get(self, path: str, query: dict):
        gallery = self.gallery
        if path in ("/", "/index.html"):
            return self._send(_static("index.html"), STATIC_FILES["index.html"])
        if path in ("/trials", "/trials.html"):
            return self._send(_static("trials.html"), STATIC_FILES["trials.html"])
        if path.startswith("/static/"):
            name = path[len("/static/"):]
            if name not in STATIC_FILES:
                raise RequestError(404, "no such file")
            return self._send(_static(name), STATIC_FILES[name])
        if path == "/api/set":
            return self._json(gallery.summary())
        if path == "/api/state":
            return self._json(gallery.state(_check_rater(query.get("rater"))))
        if path == "/api/trials":
            return self._json(gallery.trial_state(_check_rater(query.get("rater"))))
        match = re.fullmatch(r"/img/([A-Za-z0-9-]{1,40})\.png", path)
        if match:
            return self._send(gallery.image_png(match.group(1)), "image/png", cache=True)
        match = re.fullmatch(r"/trial/(\d{1,4})\.png", path)
        if match:
            rater = _check_rater(query.get("rater"))
            # no-store: nothing in the browser cache tells a later trial what an image was
            return self._send(gallery.trial_png(rater, int(match.group(1))), "image/png")
        match = re.fullmatch(r"/made/(\d{1,6})", path)
        if match:
            made = gallery.made_file(int(match.group(1)))
            with open(made.path, "rb") as file:
                return self._send(file.read(), made.content_type)
        raise RequestError(404, "no such page")

    def _post(self, path: str, query: dict):
        routes = {"/api/judge": self._post_judge, "/api/trial": self._post_trial,
                  "/api/redraw": self._post_redraw, "/api/interpolate": self._post_interpolate}
        if path not in routes:
            raise RequestError(404, "no such endpoint")
        if query:
            raise RequestError(400, "POST takes its parameters in a JSON body")
        return routes[path](self._body())

    def _body(self) -> dict:
        if self.headers.get("Transfer-Encoding"):
            raise RequestError(411, "send a Content-Length, not chunks")
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise RequestError(411, "Content-Length required")
        if int(length) > MAX_BODY_BYTES:
            self.close_connection = True  # the unread body must not be parsed as a request
            raise RequestError(413, f"request body over {MAX_BODY_BYTES} bytes")
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        raw = self.rfile.read(int(length))
        if content_type != "application/json":
            raise RequestError(415, "Content-Type must be application/json")
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: [[[[...
            raise RequestError(400, "the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise RequestError(400, "the body must be a JSON object")
        return body

    def _post_judge(self, body):
        _check_keys(body, {"rater", "image", "kind", "value", "nonce"})
        kind = body["kind"]
        if kind == "rating":
            value = _check_int(body["value"], "a rating", 1, 5)
        elif kind in FLAG_KINDS:
            if not isinstance(body["value"], bool):
                raise RequestError(400, f"{kind} value must be true or false")
            value = int(body["value"])
        else:
            raise RequestError(400, "kind must be rating, favourite or copied")
        if not isinstance(body["image"], str):
            raise RequestError(400, "image must be an image id")
        rater, nonce = _check_rater(body["rater"]), _check_nonce(body["nonce"])
        stored = self.gallery.judge(rater, body["image"], kind, value, nonce)
        self._json({"stored": stored})

    def _post_trial(self, body):
        _check_keys(body, {"rater", "position", "answer", "nonce"})
        if body["answer"] not in ("real", "generated"):
            raise RequestError(400, "answer must be real or generated")
        position = _check_int(body["position"], "position", 0, self.gallery.num_trials - 1)
        rater, nonce = _check_rater(body["rater"]), _check_nonce(body["nonce"])
        self._json(self.gallery.answer_trial(rater, position, body["answer"] == "real", nonce))

    def _post_redraw(self, body):
        _check_keys(body, {"image", "truncation"})
        if not isinstance(body["image"], str):
            raise RequestError(400, "image must be an image id")
        self._json(self.gallery.redraw(body["image"], _check_truncation(body["truncation"])))

    def _post_interpolate(self, body):
        _check_keys(body, {"a", "b", "frames", "truncation"})
        if not (isinstance(body["a"], str) and isinstance(body["b"], str)):
            raise RequestError(400, "a and b must be image ids")
        frames = _check_int(body["frames"], "frames", 2, MAX_FRAMES)
        self._json(self.gallery.interpolate(body["a"], body["b"], frames,
                                            _check_truncation(body["truncation"])))

    # ---- responses
    def _json(self, value, status: int = 200):
        self._send(json.dumps(value).encode(), "application/json", status=status)

    def _send(self, payload: bytes, content_type: str, status: int = 200, cache: bool = False):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "max-age=3600" if cache else "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:")
        self.end_headers()
        self.wfile.write(payload)


LOOPBACK = ("127.0.0.1", "localhost", "::1")


class _Server(http.server.ThreadingHTTPServer):
    # socketserver's default listen backlog is 5: a class of 20 raters opening the page at once
    # (or a busy machine slow to accept) would see connections reset.
    request_queue_size = 128
    daemon_threads = True


def make_server(gallery: Gallery, host: str = "127.0.0.1", port: int = 8765):
    """A ThreadingHTTPServer for `gallery` (port 0: any free port; see server.server_address)."""
    server = _Server((host, port), None)
    actual_port = server.server_address[1]
    allowed = None
    if host in LOOPBACK:  # a server exposed on purpose (--host 0.0.0.0) takes any Host header
        allowed = frozenset(f"{name}:{actual_port}" for name in ("127.0.0.1", "localhost", "[::1]"))
    server.RequestHandlerClass = type("GalleryHandler", (Handler,),
                                      {"gallery": gallery, "allowed_hosts": allowed})
    return server
