"""The peer seen from the bench: its virtualenv, its database, its people, its server.

Runs in the bench's own process (the portal's virtualenv) and never imports Django: everything
Django does for the peer runs in the peer's virtualenv (bench/peer/prepare.py, gunicorn).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

from bench import common
from bench.common import bench_env, connect, fresh_database, gunicorn, python, run

SETTINGS = "bench.peer.settings"
WSGI = "bench.peer.wsgi"
# The package's accept view (termsandconditions.urls, mounted at /terms/) and where it is told
# to send the person afterwards: anything but "/", where it sends a request it cannot tie to a
# person, so that a redirect here means the acceptance was recorded.
ACCEPT_PATH = "/terms/accept/"
RETURN_TO = "/terms/active/"
# The package's default slug, so its middleware and template tags find the terms unconfigured.
TERMS_SLUG = "site-terms"


def requirements() -> Path:
    return common.TREE / "bench" / "peer" / "requirements.txt"


def venv_dir() -> Path:
    return common.OUT / "peer-venv"


def venv_python() -> Path:
    return venv_dir() / "bin" / "python"


def ensure_venv() -> dict:
    """Make the peer's virtualenv unless the one there was made from the same requirements and
    interpreter; return how long it took and whether it was reused."""
    stamp = hashlib.sha256(requirements().read_bytes() + sys.version.encode()).hexdigest()
    stamp_file = venv_dir() / ".bench-requirements-sha256"
    if venv_python().exists() and stamp_file.exists() and stamp_file.read_text() == stamp:
        return {"reused": True, "seconds": 0.0}
    started = time.perf_counter()
    # A fresh one, so that a requirement taken out of the file does not linger in it.
    shutil.rmtree(venv_dir(), ignore_errors=True)
    run([python(), "-m", "venv", str(venv_dir())], log="peer-venv")
    run(
        [
            str(venv_python()),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--requirement",
            str(requirements()),
        ],
        log="peer-pip",
    )
    stamp_file.write_text(stamp)
    return {"reused": False, "seconds": time.perf_counter() - started}


def database_url(url: str) -> str:
    """The peer's database: the bench's own name with `_peer`, on the same server."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}_peer"))


def env(peer_url: str) -> dict[str, str]:
    return bench_env(peer_url, DJANGO_SETTINGS_MODULE=SETTINGS)


def prepare(peer_url: str, people: int) -> dict:
    """A fresh database for the peer, migrated, with active terms and `people` people signed
    in (prepare.py); returns what prepare.py wrote."""
    fresh_database(peer_url)
    result_file = common.OUT / "peer-prepare.json"
    result_file.unlink(missing_ok=True)
    run(
        [
            str(venv_python()),
            "-m",
            "bench.peer.prepare",
            "--people",
            str(people),
            "--json",
            str(result_file),
        ],
        env=env(peer_url),
        log="peer-prepare",
    )
    return json.loads(result_file.read_text())


def serve(peer_url: str, *, workers: int):
    """The peer under gunicorn, with the flags the portal's signing runs use; yields (port, proc)."""
    return gunicorn(
        peer_url,
        workers=workers,
        log_name="gunicorn-peer",
        app=WSGI,
        interpreter=str(venv_python()),
        DJANGO_SETTINGS_MODULE=SETTINGS,
    )


def accept_body(terms_id: int, csrf_token: str) -> str:
    """The accept form as the package's template renders it: the terms' id, returnTo, CSRF."""
    return urlencode({"terms": terms_id, "returnTo": RETURN_TO, "csrfmiddlewaretoken": csrf_token})


def accepted(peer_url: str) -> dict[str, int]:
    """Acceptances the peer recorded: rows, and the distinct people they are for."""
    connection = connect(peer_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*), count(DISTINCT user_id) "
                "FROM termsandconditions_usertermsandconditions"
            )
            rows, people = cursor.fetchone()
    finally:
        connection.close()
    return {"rows": rows, "people": people}
