"""The shared cache on Redis, built as the settings build it when REDIS_URL is set (the compose
stack sets it): a value round trip, and the rate limiter counting in one place for every
process. Skipped, with the reason, without a Redis at 127.0.0.1:6379; REQUIRE_REDIS=1 makes
that a failure."""

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
import time_machine
from django.core.cache import cache

from acknowledgements import ratelimits
from tests.conftest import skip_or_fail

ROOT = Path(__file__).resolve().parents[1]
# Database 15 of the local Redis is the tests' own: each test empties it.
REDIS_URL = "redis://127.0.0.1:6379/15"
# A moment one second into an hour: an hour's window then ends in 3599 s, in every process.
MOMENT = dt.datetime.now(dt.UTC).replace(minute=0, second=1, microsecond=0)


def _portal_environment(**variables: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    return environment | {"DJANGO_SETTINGS_MODULE": "aup_portal.settings", **variables}


def caches_of_settings(**variables: str) -> dict:
    """CACHES as the settings module makes it from these variables, read in a fresh process."""
    script = "import json; from aup_portal import settings; print(json.dumps(settings.CACHES))"
    answer = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=_portal_environment(**variables),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(answer.stdout)


@pytest.fixture
def redis_client():
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.RedisError as error:  # refused, timed out, or not Redis
        client.close()
        skip_or_fail(f"needs Redis at 127.0.0.1:6379 ({error})", "REQUIRE_REDIS")
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def redis_cache(settings, redis_client):
    """The project's cache switched to the one the settings build for REDIS_URL."""
    settings.CACHES = caches_of_settings(REDIS_URL=REDIS_URL)
    return cache


def test_the_settings_choose_redis_only_when_redis_url_is_set():
    redis_caches = caches_of_settings(REDIS_URL=REDIS_URL)
    assert redis_caches["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert redis_caches["default"]["LOCATION"] == REDIS_URL
    plain = caches_of_settings()
    assert plain["default"]["BACKEND"] == "django.core.cache.backends.db.DatabaseCache"


def test_values_make_the_round_trip_through_redis(redis_cache, redis_client):
    redis_cache.set("portal:test:value", {"who": "ada@example.com", "tries": [1, 2]}, 60)
    assert redis_cache.get("portal:test:value") == {"who": "ada@example.com", "tries": [1, 2]}
    assert not redis_cache.add("portal:test:value", "other", 60)
    redis_cache.set("portal:test:count", 0, 60)
    assert redis_cache.incr("portal:test:count") == 1
    redis_cache.delete("portal:test:value")
    assert redis_cache.get("portal:test:value") is None
    # The values are in Redis itself, not in a cache of this process.
    assert redis_client.dbsize() == 1


def test_the_rate_limiter_counts_once_for_every_process_in_redis(redis_cache, redis_client):
    with time_machine.travel(MOMENT, tick=False):
        assert (
            ratelimits.seconds_until_allowed("client 203.0.113.7", limit=2, window_seconds=3600)
            is None
        )

    # Another process, with nothing but REDIS_URL to find the count, goes on from this one's.
    script = (
        "import sys, datetime as dt, django, time_machine\n"
        "django.setup()\n"
        "from acknowledgements import ratelimits\n"
        "with time_machine.travel(dt.datetime.fromisoformat(sys.argv[1]), tick=False):\n"
        "    for _ in range(2):\n"
        "        print(ratelimits.seconds_until_allowed("
        "'client 203.0.113.7', limit=2, window_seconds=3600))\n"
    )
    answer = subprocess.run(
        [sys.executable, "-c", script, MOMENT.isoformat()],
        cwd=ROOT,
        env=_portal_environment(REDIS_URL=REDIS_URL),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.split() == ["None", "3599"]

    (counter,) = redis_client.keys("*portal:ratelimit:3600:*")
    assert int(redis_client.get(counter)) == 3
    assert 0 < redis_client.ttl(counter) <= 3600
    # Still refused here, with the same wait.
    with time_machine.travel(MOMENT, tick=False):
        assert (
            ratelimits.seconds_until_allowed("client 203.0.113.7", limit=2, window_seconds=3600)
            == 3599
        )
