from django.contrib.auth.management import create_permissions
from django.db import migrations

from acknowledgements.roles import AUDIENCES, ROLE_PERMISSIONS


def create_roles_and_audiences(apps, schema_editor):
    # Permissions are normally created after all migrations; the groups need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = None
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


def remove_roles_and_audiences(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLE_PERMISSIONS).delete()
    apps.get_model("acknowledgements", "Audience").objects.filter(slug__in=AUDIENCES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("acknowledgements", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles_and_audiences, remove_roles_and_audiences)]
