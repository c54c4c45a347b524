"""`make run PORT=8765` serves on 8765, and every link the portal writes (an email's sign link,
a receipt's verification URL and its QR code) points there, not at the default port."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import segno

from acknowledgements.evidence import ledger
from acknowledgements.models import Receipt
from acknowledgements.notifications import actions as notification_actions
from acknowledgements.notifications import sending

ROOT = Path(__file__).resolve().parents[1]
PORT = "8765"
BASE_URL = f"http://127.0.0.1:{PORT}"


def run_recipe() -> list[str]:
    """The lines `make run PORT=8765` would execute, its prerequisites' included.

    A dry run prints every recipe and runs none (no recipe of the Makefile is marked `+` or
    calls `$(MAKE)`): nothing is installed, migrated or served.
    """
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", "run", f"PORT={PORT}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k not in {"PORT", "PORTAL_BASE_URL"}},
    )
    return result.stdout.splitlines()


def test_make_run_gives_the_server_the_base_url_of_its_port():
    (server,) = [line for line in run_recipe() if " manage.py runserver " in line]
    before, _, address = server.partition(" manage.py runserver ")
    assert address == f"127.0.0.1:{PORT}"
    assignments = before.rsplit(" ", 1)[0]  # without the interpreter
    # The shell expands the recipe's defaults (`${PORTAL_BASE_URL:-...}`) as `make run` would.
    environment = {k: v for k, v in os.environ.items() if k != "PORTAL_BASE_URL"}
    shown = subprocess.run(
        ["bash", "-c", f"{assignments} printenv PORTAL_BASE_URL"],
        capture_output=True,
        text=True,
        check=True,
        env=environment,
    )
    assert shown.stdout.strip() == BASE_URL


@pytest.fixture
def on_port(settings):
    settings.PORTAL_BASE_URL = BASE_URL


@pytest.fixture
def qr_payloads(monkeypatch) -> list[str]:
    """What the receipt's QR code encodes: the text given to segno, which draws it.

    No QR decoder is installed, so the payload is read where it enters the QR library.
    """
    payloads: list[str] = []
    make = segno.make

    def recording_make(content, *args, **kwargs):
        payloads.append(content)
        return make(content, *args, **kwargs)

    monkeypatch.setattr(segno, "make", recording_make)
    return payloads


def receipt_text(pdf: bytes, tmp_path: Path) -> str:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed: cannot read the receipt's text")
    path = tmp_path / "receipt.pdf"
    path.write_bytes(pdf)
    result = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True, check=True
    )
    return " ".join(result.stdout.decode().split())


def test_a_receipt_points_at_the_port_the_portal_serves(
    on_port, signer, revision, sign, qr_payloads, django_capture_on_commit_callbacks, tmp_path
):
    with django_capture_on_commit_callbacks(execute=True):
        sign(signer, revision)
    ledger.link_pending()
    with Receipt.objects.get().pdf.open("rb") as stored:
        text = receipt_text(stored.read(), tmp_path)

    assert f"{BASE_URL}/verify/" in re.sub(r"\s+", "", text)
    assert "127.0.0.1:8000" not in text
    assert qr_payloads == [f"{BASE_URL}/verify/"]


def test_an_emails_sign_link_points_at_the_port_the_portal_serves(
    on_port, signer, revision, mailoutbox
):
    notification_actions.queue_announcements(revision=revision)
    assert sending.send_batch() == 1

    (announcement,) = mailoutbox
    sign_link = f"{BASE_URL}/policies/{revision.policy.slug}/"
    assert sign_link in announcement.body
    ((html, _mimetype),) = announcement.alternatives
    assert f'href="{sign_link}' in html
