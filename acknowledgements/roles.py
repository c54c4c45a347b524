"""The portal's roles, as Django groups with permissions (created by migration 0002)."""

POLICY_ADMINISTRATORS = "Policy administrators"
AUDITORS = "Auditors"

AUDIENCES = {
    "employees": "Employees",
    "contractors": "Contractors",
    "clients": "Clients",
    "partners": "Partners",
    "third-parties": "Third parties",
}

# Permissions are "app_label.codename" strings, as has_perm() takes them.
ROLE_PERMISSIONS = {
    POLICY_ADMINISTRATORS: [
        "acknowledgements.publish_policyrevision",
        "acknowledgements.add_policyrevision",
        "acknowledgements.change_policyrevision",
        "acknowledgements.delete_policyrevision",
        "acknowledgements.view_policyrevision",
        "acknowledgements.add_policy",
        "acknowledgements.change_policy",
        "acknowledgements.view_policy",
        "acknowledgements.add_user",
        "acknowledgements.change_user",
        "acknowledgements.view_user",
        "acknowledgements.view_audience",
        "acknowledgements.view_reports",
    ],
    AUDITORS: [
        "acknowledgements.view_reports",
        "acknowledgements.view_policy",
        "acknowledgements.view_policyrevision",
        "acknowledgements.view_user",
        "acknowledgements.view_audience",
        "acknowledgements.view_ledgerentry",
        "acknowledgements.view_acknowledgement",
        "acknowledgements.view_receipt",
    ],
}


def install_roles_and_audiences(apps) -> None:
    """Create the audiences and role groups with their permissions (idempotent).

    Takes an app registry so that migrations can pass their historical one.
    """
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after all migrations; the groups need them now.
    for app_config in apps.get_app_configs():
        create_permissions(app_config, verbosity=0, apps=apps)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    Audience = apps.get_model("acknowledgements", "Audience")
    for slug, name in AUDIENCES.items():
        Audience.objects.get_or_create(slug=slug, defaults={"name": name})
    for group_name, permissions in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        for dotted in permissions:
            app_label, codename = dotted.split(".")
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
