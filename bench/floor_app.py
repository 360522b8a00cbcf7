"""The durable floor of an HTTP write: a bare Flask app whose one endpoint inserts one row and
commits it, in the same database as the app, through the app's own engine factory (so SQLite
gets the same WAL journal, ``synchronous=FULL`` and ``BEGIN IMMEDIATE`` the app runs with).

    BENCH_FLOOR_DATABASE_URL=sqlite:////tmp/x/infomediary.sqlite3 gunicorn -w 2 bench.floor_app:app

``bench/api.py`` starts it beside the app and divides the app's rates by its rate.
"""

from __future__ import annotations

import os
import time

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import Engine, text

from infomediary.db import make_engine

TABLE = "bench_floor"

#: ``bench/api.py`` creates it (``n BIGINT, at BIGINT``) before the servers start.

app = Flask(__name__)
_engines: list[Engine] = []


def _engine() -> Engine:
    if not _engines:  # made in the worker, after the fork
        _engines.append(make_engine(os.environ["BENCH_FLOOR_DATABASE_URL"]))
    return _engines[0]


@app.get("/insert")
def insert() -> ResponseReturnValue:
    with _engine().begin() as conn:
        conn.execute(
            text(f"INSERT INTO {TABLE} (n, at) VALUES (:n, :at)"),
            {"n": os.getpid(), "at": time.time_ns()},
        )
    return jsonify({"ok": True})
