"""The Django admin: a change the ledger records leaves the same row as the portal's own page."""

from django.contrib.auth.models import Group, Permission

from acknowledgements.evidence import ledger
from acknowledgements.models import LedgerEntry
from acknowledgements.roles import AUDITORS


def audience_changes() -> list[dict]:
    payloads = (
        ledger.decode(entry)
        for entry in LedgerEntry.objects.filter(kind=LedgerEntry.Kind.ADMIN_ACTION).order_by("pk")
    )
    return [p for p in payloads if p["action"] == "person_audiences_changed"]


def admin_form(person, **changes) -> dict:
    """The change form's fields as the admin page posts them back."""
    form = {
        "email": person.email,
        "full_name": person.full_name,
        "preferred_language": person.preferred_language,
        "is_active": "on",
        "last_login_0": "",
        "last_login_1": "",
        "date_joined_0": person.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": person.date_joined.strftime("%H:%M:%S"),
    }
    return form | changes


def test_audiences_changed_in_the_admin_leave_the_portal_s_ledger_row(
    client, make_person, audiences
):
    superuser = make_person("Super User", email="root@example.com", audience=None)
    superuser.is_staff = superuser.is_superuser = True
    superuser.save()
    person = make_person("Moving Person")
    client.force_login(superuser)

    response = client.post(
        f"/django-admin/acknowledgements/user/{person.pk}/change/",
        admin_form(person, audiences=[audiences["partners"].pk]),
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    assert [a.slug for a in person.audiences.all()] == ["partners"]
    (change,) = audience_changes()
    assert change["details"]["before"] == ["employees"]
    assert change["details"]["after"] == ["partners"]
    assert change["details"]["person"]["email"] == person.email
    assert change["actor"]["email"] == superuser.email

    # Saving the form again without a change records nothing more.
    client.post(
        f"/django-admin/acknowledgements/user/{person.pk}/change/",
        admin_form(person, audiences=[audiences["partners"].pk]),
    )
    assert len(audience_changes()) == 1


def test_the_role_groups_permissions_cannot_be_changed_in_the_admin(client, make_person):
    superuser = make_person("Super User", email="root@example.com", audience=None)
    superuser.is_staff = superuser.is_superuser = True
    superuser.save()
    client.force_login(superuser)
    auditors = Group.objects.get(name=AUDITORS)
    granted = set(auditors.permissions.values_list("pk", flat=True))
    publish = Permission.objects.get(codename="publish_policyrevision")
    url = f"/django-admin/auth/group/{auditors.pk}/change/"

    page = client.get(url)
    assert page.status_code == 200
    assert "View group" in page.content.decode() and 'name="_save"' not in page.content.decode()

    refused = client.post(url, {"name": AUDITORS, "permissions": [*granted, publish.pk]})
    assert refused.status_code == 403
    assert set(auditors.permissions.values_list("pk", flat=True)) == granted
    assert not auditors.permissions.filter(pk=publish.pk).exists()
    assert (
        client.post(f"/django-admin/auth/group/{auditors.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert client.post("/django-admin/auth/group/add/", {"name": "Owners"}).status_code == 403
    assert Group.objects.filter(name=AUDITORS).exists()
    assert not Group.objects.filter(name="Owners").exists()
