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
