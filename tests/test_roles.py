"""Who holds power is in the evidence: every role grant and revocation is a ledger row naming
who gave or took what from whom, whichever door it comes in by."""

import io

import pytest
from django.core.management import CommandError, call_command

from acknowledgements.evidence import ledger
from acknowledgements.models import LedgerEntry, User
from acknowledgements.people import access
from acknowledgements.roles import AUDITORS
from tests.pages import text_of


def role_rows() -> list[dict]:
    payloads = (
        ledger.decode(e)
        for e in LedgerEntry.objects.filter(kind=LedgerEntry.Kind.ADMIN_ACTION).order_by("pk")
    )
    return [p for p in payloads if p["action"] in ("role_granted", "role_revoked")]


def test_granting_and_revoking_is_audited_once(signer, admin_user):
    assert access.grant_role(actor=admin_user, person=signer, role="auditor")
    assert not access.grant_role(actor=admin_user, person=signer, role="auditor")
    assert signer.groups.filter(name=AUDITORS).exists()
    assert access.revoke_role(actor=admin_user, person=signer, role="auditor")
    assert not access.revoke_role(actor=admin_user, person=signer, role="auditor")

    granted, revoked = role_rows()
    assert (granted["action"], granted["details"]["role"]) == ("role_granted", "auditor")
    assert granted["details"]["person"]["email"] == signer.email
    assert granted["actor"]["email"] == admin_user.email
    assert revoked["action"] == "role_revoked"


def test_an_unknown_role_is_refused(signer):
    with pytest.raises(access.ActionRefused, match="There is no role pope"):
        access.grant_role(actor=None, person=signer, role="pope")
    assert role_rows() == []


def test_the_commands_grant_and_revoke_by_email(signer):
    out = io.StringIO()
    call_command("grant_role", "ADA@example.com", "superuser", stdout=out)
    signer.refresh_from_db()
    assert signer.is_superuser
    call_command("revoke_role", signer.email, "superuser", stdout=out)
    call_command("revoke_role", signer.email, "superuser", stdout=out)
    assert out.getvalue().splitlines() == [
        "ada@example.com is now superuser.",
        "ada@example.com is no longer superuser.",
        "ada@example.com is no longer superuser (unchanged).",
    ]
    assert [r["action"] for r in role_rows()] == ["role_granted", "role_revoked"]
    with pytest.raises(CommandError, match=r"Nobody has the address nobody@example\.com"):
        call_command("grant_role", "nobody@example.com", "auditor")
    with pytest.raises(CommandError, match="There is no role"):
        call_command("grant_role", signer.email, "owner")


def test_roles_given_in_the_django_admin_are_audited_like_the_commands(
    client, make_person, audiences
):
    from tests.test_admin import admin_form

    root = make_person("Root", email="root@example.com", audience=None)
    access.set_roles(actor=None, person=root, roles={"staff", "superuser"})
    person = make_person("Promoted Person")
    client.force_login(root)
    auditors = access.Group.objects.get(name=AUDITORS)

    answer = client.post(
        f"/django-admin/acknowledgements/user/{person.pk}/change/",
        admin_form(
            person, audiences=[audiences["employees"].pk], groups=[auditors.pk], is_staff="on"
        ),
    )

    assert answer.status_code == 302, answer.content.decode()[:1500]
    person.refresh_from_db()
    assert access.roles_of(person) == {"auditor", "staff"}
    rows = [r for r in role_rows() if r["details"]["person"]["email"] == person.email]
    assert sorted(r["details"]["role"] for r in rows) == ["auditor", "staff"]
    assert all(r["actor"]["email"] == root.email for r in rows)


def test_the_person_page_shows_roles_and_their_history(logged_in, admin_user, signer):
    access.grant_role(actor=admin_user, person=signer, role="auditor")
    page = text_of(logged_in(admin_user).get(f"/manage/people/{signer.pk}/"))
    assert "Roles Auditor" in page
    assert "Auditor granted by Grace Hopper" in page


def test_createsuperuser_leaves_the_grants_in_the_ledger(db, monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a-long-and-unusual-passphrase")
    out = io.StringIO()
    call_command(
        "createsuperuser",
        "--no-input",
        "--email=Root@Example.com",
        "--full_name=Root Operator",
        stdout=out,
    )

    assert out.getvalue() == "Superuser created successfully.\n"
    root = User.objects.get(email="root@example.com")
    assert access.roles_of(root) == {"staff", "superuser"}
    staff, superuser = role_rows()
    for row, role in ((staff, "staff"), (superuser, "superuser")):
        assert (row["action"], row["details"]["role"]) == ("role_granted", role)
        assert row["details"]["person"]["email"] == "root@example.com"
        assert row["actor"] is None
        assert row["via"] == "manage.py createsuperuser"
    assert [(h["role"], h["actor"]) for h in access.role_history(root)] == [
        ("Staff (the Django admin)", "manage.py createsuperuser"),
        ("Superuser", "manage.py createsuperuser"),
    ]


def test_a_refused_createsuperuser_records_nothing(signer, monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a-long-and-unusual-passphrase")
    with pytest.raises(CommandError, match="already taken"):
        call_command(
            "createsuperuser", "--no-input", f"--email={signer.email}", "--full_name=Again"
        )
    assert role_rows() == []
