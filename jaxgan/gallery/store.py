"""The judgements of a gallery, in SQLite: `<workdir>/ratings.sqlite`.

One row per judgement (a rating, a favourite or "looks copied" flag set or cleared, a blind-trial
answer): who, which image, its seed, class and step, the value, when. Rows are only ever added,
each in its own transaction, so a rater's history is complete and a kill loses at most the
request in flight. The current state (a rater's latest rating of an image, whether a flag is on)
is read from the newest row.

Concurrency: every request opens its own connection (sqlite3 connections must not be shared
between threads without care, and opening one costs ~0.1 ms); WAL mode lets readers run beside
the one writer, `BEGIN IMMEDIATE` takes the write lock up front (so two writers never deadlock
upgrading a read lock), and `busy_timeout` makes a writer wait for the lock instead of failing
(another process, e.g. the report); within the server, writers queue on a Python lock.
Each judgement carries a client-made `nonce` with a UNIQUE constraint: a request the browser
retries (or a double click) is stored once.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import sqlite3
import threading
import time

from jaxgan.errors import UserError

DB_NAME = "ratings.sqlite"
KINDS = ("rating", "favourite", "copied", "trial")
BUSY_TIMEOUT_MS = 10_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS judgements (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  nonce TEXT NOT NULL UNIQUE,      -- made by the client; a retried request is stored once
  rater TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('rating', 'favourite', 'copied', 'trial')),
  image_id TEXT NOT NULL,          -- gallery image id, or 'trial:<position>' for a trial
  source TEXT NOT NULL CHECK (source IN ('generated', 'real')),
  seed INTEGER,                    -- generated images: the noise seed
  class_index INTEGER,             -- NULL for unconditional models
  class_name TEXT,
  step INTEGER NOT NULL,           -- checkpoint step of the generator
  real_index INTEGER,              -- real images: the row in the training data
  value INTEGER NOT NULL,          -- rating 1-5; flag 1 (set) / 0 (cleared); trial 1 (said real) / 0
  time REAL NOT NULL               -- seconds since the epoch (UTC)
);
CREATE INDEX IF NOT EXISTS judgements_by_rater ON judgements (rater, kind, image_id);
CREATE UNIQUE INDEX IF NOT EXISTS one_answer_per_trial ON judgements (rater, step, image_id)
  WHERE kind = 'trial';
"""
COLUMNS = ("id", "nonce", "rater", "kind", "image_id", "source", "seed", "class_index",
           "class_name", "step", "real_index", "value", "time")


@dataclasses.dataclass(frozen=True)
class Judgement:
    rater: str
    kind: str
    image_id: str
    source: str
    seed: int | None
    class_index: int | None
    class_name: str | None
    step: int
    real_index: int | None
    value: int


class AlreadyAnswered(Exception):
    """A blind trial the rater has answered before (its first answer stands)."""


def db_path(workdir) -> str:
    return os.path.join(os.fspath(workdir), DB_NAME)


class Store:
    def __init__(self, path):
        self.path = os.fspath(path)
        # Held open for the store's life: when the last connection to a WAL database closes,
        # SQLite checkpoints and deletes the WAL, which would otherwise happen after every request.
        # Writers of this process queue on a lock: SQLite's own busy handler polls with growing
        # sleeps (up to 100 ms), so 20 writers contending through it alone see second-long tails.
        self._write_lock = threading.Lock()
        try:
            self._keeper = self._connect()
            self._keeper.execute("PRAGMA journal_mode=WAL")  # persistent: set once per file
            self._keeper.executescript(SCHEMA)
        except sqlite3.Error as error:  # not an SQLite file, read-only folder, ...
            raise UserError(f"cannot open the judgements in {self.path}: {error}") from None

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves.
        connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000,
                                     isolation_level=None)
        connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        # FULL: a committed judgement is on disk before the request is answered (WAL's default,
        # NORMAL, survives a killed process but not a power cut).
        connection.execute("PRAGMA synchronous=FULL")
        return connection

    @contextlib.contextmanager
    def _transaction(self):
        connection = self._connect()
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        finally:
            connection.close()

    def add(self, judgement: Judgement, nonce: str, now: float | None = None) -> bool:
        """Store one judgement; False when this nonce was stored before (a retry: nothing added).

        Raises AlreadyAnswered for a second answer to the same trial.
        """
        row = dataclasses.asdict(judgement)
        row.update(nonce=nonce, time=time.time() if now is None else now)
        names = ", ".join(row)
        with self._write_lock, self._transaction() as connection:
            if connection.execute("SELECT 1 FROM judgements WHERE nonce = ?", (nonce,)).fetchone():
                return False
            try:
                connection.execute(f"INSERT INTO judgements ({names}) VALUES "
                                   f"({', '.join('?' * len(row))})", tuple(row.values()))
            except sqlite3.IntegrityError as error:
                if judgement.kind == "trial":
                    raise AlreadyAnswered(judgement.image_id) from error
                raise
        return True

    def close(self) -> None:
        self._keeper.close()

    def rows(self, where: str = "", params: tuple = ()) -> list[dict]:
        """All judgements (oldest first) as dicts of COLUMNS, optionally filtered by SQL `where`."""
        with contextlib.closing(self._connect()) as connection:
            cursor = connection.execute(
                f"SELECT {', '.join(COLUMNS)} FROM judgements {where} ORDER BY id", params)
            return [dict(zip(COLUMNS, row)) for row in cursor]

    def current(self, rater: str, step: int) -> dict:
        """A rater's current state at `step`: {image_id: {kind: value}} from the newest rows."""
        state: dict = {}
        for row in self.rows("WHERE rater = ? AND step = ? AND kind != 'trial'", (rater, step)):
            state.setdefault(row["image_id"], {})[row["kind"]] = row["value"]
        return state

    def trials(self, rater: str, step: int) -> list[dict]:
        return self.rows("WHERE rater = ? AND step = ? AND kind = 'trial'", (rater, step))


def latest(rows, kind: str) -> list[dict]:
    """The newest row of `kind` for each (rater, step, image): a rater's current judgement."""
    newest = {}
    for row in rows:  # oldest first: later rows replace earlier ones
        if row["kind"] == kind:
            newest[(row["rater"], row["step"], row["image_id"])] = row
    return list(newest.values())
