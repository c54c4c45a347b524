"""Settings of the benchmark runs: the portal's own settings plus a bench-only URLconf.

Only what a measurement needs differs from production:
- `bench.urls` adds one bare view (a single ORM INSERT of a ledger-like row) next to the
  portal's URLs, served by the same gunicorn, as the signing benchmark's baseline;
- the signing gate also lets that bare view through (the sign view is let through already), so
  the baseline pays for the same middleware as the sign view and nothing more;
- collected static files (hashed, not compressed), sealing keys and stored receipts live
  under bench/.out/<size>/;
- bench/apps.py holds two switches that only the task worker of the signing benchmark's
  figures 1h-1j sets in its environment (its receipt task does only its ledger work; with
  BENCH_SKIP_CHECKPOINT, no checkpoint is signed): unset, nothing changes.
"""

import os
from pathlib import Path

from aup_portal.settings import *  # noqa: F403
from aup_portal.settings import BASE_DIR, INSTALLED_APPS, MIDDLEWARE, STORAGES

OUT_DIR = Path(os.environ.get("BENCH_OUT_DIR") or BASE_DIR / "bench" / ".out")

INSTALLED_APPS = [*INSTALLED_APPS, "bench"]
ROOT_URLCONF = "bench.urls"
MIDDLEWARE = [
    "bench.middleware.SigningGateMiddleware"
    if name == "acknowledgements.middleware.SigningGateMiddleware"
    else name
    for name in MIDDLEWARE
]
STATIC_ROOT = OUT_DIR / "static"
# Hashed names from a manifest as in production, without WhiteNoise's compression step (which
# only serves static files, nothing measured here, and takes most of collectstatic's time).
STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
}
MEDIA_ROOT = OUT_DIR / "media"
PORTAL_SEALING_DIR = OUT_DIR / "sealing"
