"""Docker does not run on CI machines, so the compose file is checked here instead.

Every service's command must exist in the project, every variable it sets must be one the
settings read, and the same commands run outside containers against PostgreSQL: gunicorn
answers /healthz, and one db_worker run processes an enqueued receipt.
"""

import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.management import get_commands
from django.db import connection

from acknowledgements.models import Receipt

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SETTINGS_SOURCE = (ROOT / "aup_portal" / "settings.py").read_text()
# Variables read by the images and services we do not build, or by Django itself.
OUTSIDE_SETTINGS = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"}


def portal_services() -> dict:
    return {name: s for name, s in COMPOSE["services"].items() if s.get("build")}


def commands_of(service: dict) -> list[list[str]]:
    """The programs a service runs (a `sh -c` script may run several)."""
    command = service.get("command", [])
    if command[:2] == ["sh", "-c"]:
        parts = re.split(r"&&|;|\bdo\b|\bdone\b", command[2])
        return [shlex.split(part) for part in parts if part.strip()]
    return [command]


def settings_variables() -> set[str]:
    return set(re.findall(r'env_\w+\(\s*"([A-Z0-9_]+)"', SETTINGS_SOURCE))


def test_every_service_command_exists_in_the_project():
    known = set(get_commands())
    for name, service in portal_services().items():
        for argv in commands_of(service):
            if argv[0] == "exec":  # the shell replaces itself with the program that follows
                argv = argv[1:]
            program = argv[0]
            if program == "python":
                assert argv[1] == "manage.py" and argv[2] in known, (name, argv)
            elif program == "gunicorn":
                module, _, attribute = argv[1].partition(":")
                __import__(module)
                assert hasattr(sys.modules[module], attribute or "application"), (name, argv)
            else:
                assert program in {"sleep", "while", "true"}, (name, argv)


def test_every_variable_the_stack_sets_is_read_by_the_settings():
    read = settings_variables() | {"DATABASE_URL", "DEMO_PASSWORD"}
    anchor = COMPOSE["x-portal"]["environment"]
    set_by_stack = set(anchor) | {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert set_by_stack - read - OUTSIDE_SETTINGS == set()


def test_every_variable_the_settings_read_is_documented():
    readme = (ROOT / "README.md").read_text()
    example = (ROOT / ".env.example").read_text()
    missing = {v for v in settings_variables() if v not in readme or v not in example}
    assert missing == set()


def test_the_deployment_guide_names_what_the_scheduler_runs_and_the_keys_to_back_up():
    guide = (ROOT / "docs" / "deployment.md").read_text()
    scheduled = {
        argv[2] for argv in commands_of(COMPOSE["services"]["scheduler"]) if argv[0] == "python"
    }
    # The damage banner and the exports' warning read verify_ledger's last recorded run.
    assert {"verify_ledger", "witness_checkpoint"} <= scheduled
    diagram = guide.split("scheduler: python manage.py", 1)[1].split("```", 1)[0]
    paragraph = guide.split("- **Scheduler**", 1)[1].split("\n- **", 1)[0]
    assert {c for c in scheduled if c not in diagram} == set()
    assert {c for c in scheduled if f"python manage.py {c}`" not in paragraph} == set()
    backups = guide.split("## Backups and restore", 1)[1].split("\n## ", 1)[0]
    for variable in ("PORTAL_LEDGER_KEY", "PORTAL_LEDGER_KEY_DIR", "PORTAL_SEALING_ROOT_KEY_DIR"):
        assert f"`{variable}`" in backups, variable


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _environment(**extra) -> dict:
    database = connection.settings_dict
    url = f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
    return {
        **os.environ,
        "DATABASE_URL": url,
        "PORTAL_SEALING_DIR": str(settings.PORTAL_SEALING_DIR),
        "PORTAL_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "DJANGO_DEBUG": "0",
        **extra,
    }


@pytest.mark.postgres
def test_gunicorn_serves_healthz_and_readyz(evidence_db):
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "aup_portal.wsgi", "--bind", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=_environment(DJANGO_ALLOWED_HOSTS="127.0.0.1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz") as answer:
                    assert answer.status == 200
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.3)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz") as answer:
            assert answer.status == 200
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.postgres
def test_one_db_worker_run_processes_an_enqueued_receipt(
    evidence_db, settings, signer, revision, sign
):
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    acknowledgement = sign(signer, revision)  # commits; the receipt task waits in the queue
    assert not Receipt.objects.filter(acknowledgement=acknowledgement).exists()

    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "db_worker",
            "--batch",
            "--no-startup-delay",
            "--no-reload",
            "--queue-name",
            "*",
        ],
        cwd=ROOT,
        env=_environment(PORTAL_TASK_BACKEND="database"),
        check=True,
        timeout=120,
        capture_output=True,
    )

    receipt = Receipt.objects.get(acknowledgement=acknowledgement)
    with receipt.pdf.open("rb") as pdf:
        assert pdf.read(5) == b"%PDF-"
