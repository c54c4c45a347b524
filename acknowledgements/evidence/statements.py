"""The statements a signer agrees to, each versioned and hashed, in every language it is shown in.

Changing a statement's words in any language means adding a new version: the ledger records
which version, which language and the SHA-256 of the exact text each person agreed to, so an
old version's texts must stay here forever. A language may be added to an existing version; a
text once written never changes. The texts are written here rather than translated
through the gettext catalogue because a catalogue edit would silently change what later signers
agree to under the same version. The English text is authoritative; the others help people
read it, like a revision's translations (models.RevisionTranslation).
"""

import hashlib
from dataclasses import dataclass, field

from acknowledgements.models import AUTHORITATIVE_LANGUAGE


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Statement:
    version: str
    texts: dict[str, str] = field(default_factory=dict)  # language code -> exact text

    def __post_init__(self) -> None:
        if AUTHORITATIVE_LANGUAGE not in self.texts:
            raise ValueError(f"Statement {self.version} has no {AUTHORITATIVE_LANGUAGE} text.")

    @property
    def text(self) -> str:
        """The authoritative text."""
        return self.texts[AUTHORITATIVE_LANGUAGE]

    @property
    def sha256(self) -> str:
        """The authoritative text's SHA-256."""
        return _sha256(self.text)

    def language_for(self, language: str | None) -> str:
        """The language a reader of `language` is shown: theirs if written, else English."""
        code = (language or "").split("-")[0]
        return code if code in self.texts else AUTHORITATIVE_LANGUAGE

    def text_in(self, language: str | None) -> str:
        return self.texts[self.language_for(language)]

    def as_evidence(self, language: str | None = AUTHORITATIVE_LANGUAGE) -> dict[str, str]:
        """What the ledger records: the text shown, its language and hash, and the binding one's.

        The layout follows a signed policy text's (`text`, `sha256` and `language` are what was
        shown; the `authoritative_*` keys name the English text), and an entry written before
        translations existed, holding only version, text and sha256, reads the same way.
        """
        shown = self.language_for(language)
        return {
            "version": self.version,
            "language": shown,
            "text": self.texts[shown],
            "sha256": _sha256(self.texts[shown]),
            "authoritative_language": AUTHORITATIVE_LANGUAGE,
            "authoritative_sha256": self.sha256,
        }


ATTESTATIONS = {
    "1": Statement(
        version="1",
        texts={
            "en": (
                "I have read and understood this policy, I agree to comply with it, and I "
                "accept responsibility for my conduct and the consequences of violating it."
            ),
            "fr": (
                "J\u2019ai lu et compris cette politique, je m\u2019engage à la respecter et "
                "j\u2019accepte la responsabilité de ma conduite et des conséquences de toute "
                "violation de celle-ci."
            ),
        },
    ),
}
ESIGN_CONSENTS = {
    "1": Statement(
        version="1",
        texts={
            "en": (
                "I agree to sign policy acknowledgements electronically. My electronic "
                "signature (ticking the box, typing my full name and pressing Sign) has the "
                "same effect as a handwritten signature. I will receive a sealed PDF receipt of "
                "each signature and can download my records at any time from My "
                "acknowledgements."
            ),
            "fr": (
                "J\u2019accepte de signer électroniquement les attestations de lecture des "
                "politiques. Ma signature électronique (cocher la case, saisir mon nom complet "
                "et appuyer sur Signer) a le même effet qu\u2019une signature manuscrite. Je "
                "recevrai un reçu PDF scellé de chaque signature et je peux télécharger mes "
                "données à tout moment depuis Mes attestations."
            ),
        },
    ),
}
CURRENT_ATTESTATION = ATTESTATIONS["1"]
CURRENT_ESIGN_CONSENT = ESIGN_CONSENTS["1"]
