"""Load on the gallery's server: R concurrent simulated raters x N ratings each, over HTTP.

Command (repo root, jaxgan installed):

    python benchmarks/gallery_load.py --workdir runs/digits      # --raters 20 --ratings 50
    python benchmarks/gallery_load.py                             # trains a 2-step tiny run first

The server is started as `python -m jaxgan.gallery` in its own process on 127.0.0.1 (any free
port), on a copy of the workdir's checkpoints (the workdir's own ratings.sqlite is not touched).
Each rater is a thread with its own keep-alive connection posting ratings one after another (each
rating waits for the previous answer, as a person clicking would, only faster). Then the SQLite
file is read: every rating must be there exactly once with the value sent (no lost row, no
duplicate). Prints p50 / p95 / max latency and ratings per second. Exits 1 on a lost or duplicated
row, an error answer, or when the run takes longer than --timeout seconds.

Measured with `python benchmarks/gallery_load.py --workdir runs/digits` (a 3,000-step digits run)
on a 2-core AMD EPYC VM (AVX2) shared with other jobs (load average 13-15 during the runs),
Python 3.11.7, SQLite 3.40.1, three runs:

    sent 1000, stored 1000, lost 0, duplicated 0, unexpected 0, error answers 0   (each run)
    latency ms: p50 166-193, p95 377-396, max 754-875; 94-105 ratings/s

Every rating is committed with synchronous=FULL (fsync of the WAL: ~13 ms per commit on this VM,
~3 ms with NORMAL), one writer at a time, so 20 raters posting back to back queue for ~20 x 10 ms:
that is the p50. People rate perhaps one image a second, 20 raters ~20 ratings/s, a fifth of what
one server sustains here. Before the server's listen backlog was raised from socketserver's 5 to
128, this benchmark saw connections reset on the loaded machine.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

import numpy as np


def trained_tiny_run(directory: str) -> str:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    from conftest import tiny_config  # noqa: E402 (the tests' tiny config)

    import jaxgan
    workdir = os.path.join(directory, "tiny-run")
    jaxgan.train_and_evaluate(tiny_config(**{"train.num_steps": 2}), workdir)
    return workdir


def start_server(workdir: str, deadline: float):
    process = subprocess.Popen(
        [sys.executable, "-m", "jaxgan.gallery", "--workdir", workdir, "--port", "0",
         "--num", "64"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if match:
            return process, int(match.group(1))
    process.kill()
    raise SystemExit("the gallery did not start:\n" + "".join(lines))


def rater(port: int, k: int, image_ids, ratings: int, deadline: float):
    """Post `ratings` ratings as rater k; returns ([(nonce, image, value)], latencies_s, errors)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    sent, latencies, errors = [], [], []
    rng = np.random.default_rng(k)
    for i in range(ratings):
        if time.monotonic() > deadline:
            errors.append("deadline passed")
            break
        image = image_ids[int(rng.integers(len(image_ids)))]
        value = int(rng.integers(1, 6))
        nonce = f"load-{k:03d}-{i:05d}"
        body = json.dumps({"rater": f"rater{k:02d}", "image": image, "kind": "rating",
                           "value": value, "nonce": nonce})
        start = time.perf_counter()
        try:
            connection.request("POST", "/api/judge", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            answer = response.read()
        except OSError as error:  # counted, not retried: a lost request is what we look for
            errors.append(f"rating {i}: {type(error).__name__}: {error}")
            break
        latencies.append(time.perf_counter() - start)
        if response.status != 200 or json.loads(answer) != {"stored": True}:
            errors.append(f"{response.status} {answer[:200]!r}")
        sent.append((nonce, image, value))
    connection.close()
    return sent, latencies, errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", help="a trained workdir (default: train a 2-step tiny run)")
    parser.add_argument("--raters", type=int, default=20)
    parser.add_argument("--ratings", type=int, default=50, help="per rater")
    parser.add_argument("--timeout", type=float, default=300, help="seconds for the whole run")
    args = parser.parse_args()
    deadline = time.monotonic() + args.timeout
    with tempfile.TemporaryDirectory() as directory:
        source = args.workdir or trained_tiny_run(directory)
        workdir = os.path.join(directory, "run")
        shutil.copytree(os.path.join(source, "checkpoints"), os.path.join(workdir, "checkpoints"))
        process, port = start_server(workdir, deadline)
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("GET", "/api/set")
            image_ids = [im["id"] for im in json.loads(connection.getresponse().read())["images"]]
            connection.close()
            start = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(args.raters) as pool:
                results = list(pool.map(lambda k: rater(port, k, image_ids, args.ratings, deadline),
                                        range(args.raters)))
            elapsed = time.perf_counter() - start
        finally:
            process.terminate()
            process.wait(30)
        with sqlite3.connect(os.path.join(workdir, "ratings.sqlite")) as db:
            stored = db.execute("SELECT nonce, image_id, value FROM judgements").fetchall()
    sent = [row for rows, _, _ in results for row in rows]
    errors = [e for _, _, errs in results for e in errs]
    latencies_ms = 1000 * np.array([t for _, ts, _ in results for t in ts])
    lost = set(sent) - set(stored)
    duplicated = len(stored) - len(set(n for n, _, _ in stored))
    extra = set(stored) - set(sent)
    print(f"{args.raters} raters x {args.ratings} ratings over HTTP on 127.0.0.1; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}")
    print(f"sent {len(sent)}, stored {len(stored)}, lost {len(lost)}, duplicated {duplicated}, "
          f"unexpected {len(extra)}, error answers {len(errors)}")
    print(f"latency ms: p50 {np.percentile(latencies_ms, 50):.1f}, "
          f"p95 {np.percentile(latencies_ms, 95):.1f}, max {latencies_ms.max():.1f}; "
          f"{len(sent) / elapsed:.0f} ratings/s ({elapsed:.1f} s)")
    for error in errors[:5]:
        print("error:", error)
    ok = (not lost and not duplicated and not extra and not errors
          and len(sent) == args.raters * args.ratings)
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
