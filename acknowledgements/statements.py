"""The statements a signer agrees to, each versioned and hashed.

Changing a statement's words means adding a new version: the ledger records which version
(and its SHA-256) each person agreed to, so an old version's text must stay here forever.
"""

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Statement:
    version: str
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def as_evidence(self) -> dict[str, str]:
        return {"version": self.version, "text": self.text, "sha256": self.sha256}


ATTESTATIONS = {
    "1": Statement(
        version="1",
        text=(
            "I have read and understood this policy, I agree to comply with it, and I accept "
            "responsibility for my conduct and the consequences of violating it."
        ),
    ),
}
ESIGN_CONSENTS = {
    "1": Statement(
        version="1",
        text=(
            "I agree to sign policy acknowledgements electronically. My electronic signature "
            "(ticking the box, typing my full name and pressing Sign) has the same effect as a "
            "handwritten signature. I will receive a sealed PDF receipt of each signature and "
            "can download my records at any time from My acknowledgements."
        ),
    ),
}
CURRENT_ATTESTATION = ATTESTATIONS["1"]
CURRENT_ESIGN_CONSENT = ESIGN_CONSENTS["1"]
