"""How a policy text is hashed is worded once (models.TEXT_SHA256_RULE): the receipt, the
verification page, the README and docs/architecture.md say it in the same words, and the text a
receipt carries hashes to the receipt's text SHA-256 by it."""

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from acknowledgements.models import TEXT_SHA256_RULE, Receipt
from acknowledgements.policies import text as policy_text
from acknowledgements.receipts import authority, seal
from tests.pages import text_of

ROOT = Path(__file__).resolve().parent.parent
RULE = str(TEXT_SHA256_RULE)


def words(text: str) -> str:
    return " ".join(text.split())


def quoted_rule(path: Path) -> str:
    """The sentence a document quotes as the rule: “A policy text's SHA-256 ...”."""
    found = re.search(r"“(A policy text's SHA-256 [^”]*)”", words(path.read_text()))
    assert found, f"{path.name} does not quote the rule"
    return found.group(1)


def test_the_readme_and_the_architecture_notes_quote_the_rule_word_for_word():
    assert quoted_rule(ROOT / "README.md") == RULE
    assert quoted_rule(ROOT / "docs" / "architecture.md") == RULE


def test_the_rule_says_what_is_computed():
    written = "\r\n\n# Déontologie  \r\nBe kind.\t\r\n\r\n\n"
    by_the_rule = "# Déontologie\nBe kind.\n".encode()

    assert policy_text.text_sha256(written) == hashlib.sha256(by_the_rule).hexdigest()


def test_the_verification_page_prints_the_rule(db, client):
    assert RULE in text_of(client.get("/verify/"))


def test_the_receipt_prints_the_rule_and_carries_the_text_it_hashes(
    signer, revision, sign, django_capture_on_commit_callbacks, tmp_path
):
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed: cannot read the receipt's text")
    with django_capture_on_commit_callbacks(execute=True):
        sign(signer, revision)
    with Receipt.objects.get().pdf.open("rb") as stored:
        pdf = stored.read()
    path = tmp_path / "receipt.pdf"
    path.write_bytes(pdf)

    printed = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True, check=True
    ).stdout.decode()

    # A line may break anywhere in the sentence, even inside "SHA-256".
    assert "".join(RULE.split()) in "".join(printed.split())
    assert revision.text_sha256 in printed
    identity = authority.load_sealing_identity()
    report = seal.inspect_receipt(pdf, trust_roots_pem=[identity.root_pem])
    attached = report.attachments[f"policy-{revision.version}.md"]
    assert hashlib.sha256(attached).hexdigest() == revision.text_sha256
