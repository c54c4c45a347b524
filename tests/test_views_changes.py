from acknowledgements.models import PolicyRevision
from tests.conftest import POLICY_BODY


def test_a_person_asked_to_sign_again_sees_what_changed(signer, policy, publish, sign, logged_in):
    first = publish(policy, "1.0")
    sign(signer, first)
    second = publish(
        policy,
        "2.0",
        body=POLICY_BODY.replace("Be excellent.", "Be excellent to each other."),
        change=PolicyRevision.Change.MATERIAL,
    )
    page = logged_in(signer).get(f"/policies/{policy.slug}/").content.decode()
    assert "What changed since you signed" in page
    assert "You signed version 1.0" in page
    assert "Be excellent<ins> to each other</ins>." in page
    assert second.version in page


def test_no_changes_section_for_a_first_signature(signer, revision, logged_in, policy):
    page = logged_in(signer).get(f"/policies/{policy.slug}/").content.decode()
    assert "What changed since you signed" not in page
