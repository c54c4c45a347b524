from django.db import migrations

from acknowledgements.roles import AUDIENCES, ROLE_PERMISSIONS, install_roles_and_audiences


def create_roles_and_audiences(apps, schema_editor):
    for app_config in apps.get_app_configs():
        # Historical app configs have no models module, which create_permissions requires.
        app_config.models_module = True
    install_roles_and_audiences(apps)


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
