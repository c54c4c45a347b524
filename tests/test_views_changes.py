import re

from acknowledgements.models import PolicyRevision
from acknowledgements.policies import actions as policy_actions
from tests.conftest import POLICY_BODY
from tests.pages import html_of, text_of

ADDED = '<ins><span class="visually-hidden">added: </span>'
REMOVED = '<del><span class="visually-hidden">removed: </span>'


def section(html: str, heading_id: str) -> str:
    """The HTML of the page section a heading names."""
    found = re.search(rf'<section[^>]*aria-labelledby="{heading_id}".*?</section>', html, re.S)
    assert found, f"no section {heading_id}"
    return found.group(0)


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
    assert f"Be excellent{ADDED} to each other</ins>." in page
    assert second.version in page


def test_what_changed_since_signing_reads_as_formatted_text(
    signer, policy, publish, sign, logged_in
):
    sign(signer, publish(policy, "1.0"))
    publish(
        policy,
        "2.0",
        body=POLICY_BODY.replace("## 2. Scope", "## 2. Scope and **duty**"),
    )

    changes = section(html_of(logged_in(signer).get(f"/policies/{policy.slug}/")), "changes-title")

    assert "##" not in changes
    assert "**" not in changes
    assert f"2. Scope{ADDED} and <strong>duty</strong></ins>" in changes
    assert f"Version {REMOVED}1.0</del>{ADDED}2.0</ins>." in changes
    assert "removed text" in changes and "added text" in changes  # the legend


def test_no_changes_section_for_a_first_signature(signer, revision, logged_in, policy):
    page = logged_in(signer).get(f"/policies/{policy.slug}/").content.decode()
    assert "What changed since you signed" not in page


def test_administrators_see_the_formatted_diff_and_the_source_one_click_away(
    logged_in, admin_user, revision
):
    draft = policy_actions.create_draft(
        actor=admin_user,
        policy=revision.policy,
        version="2.0",
        body=revision.body.replace("Everyone.", "Everyone, **including contractors**."),
        change=PolicyRevision.Change.MATERIAL,
    )
    response = logged_in(admin_user).get(f"/manage/revisions/{draft.pk}/")
    diff = section(html_of(response), "diff-title")

    formatted, source = diff.split('<details class="source-diff">')
    assert "**" not in formatted
    assert f"Everyone{ADDED}, <strong>including contractors</strong></ins>." in formatted
    assert "<summary>Show the Markdown source diff</summary>" in source
    assert "Everyone<ins>, **including contractors**</ins>." in source
    assert "Changes from version 1.0 to 2.0" in text_of(response)
