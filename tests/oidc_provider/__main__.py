"""Start the test identity provider: migrate, create its user and client, then serve.

    python -m tests.oidc_provider --database /tmp/idp.sqlite3 --host 127.0.0.1 --port 8765 \
        --issuer http://127.0.0.1:8765/o --redirect-uri http://localhost:8000/accounts/... \
        --client-id portal --client-secret s3cret \
        --username ada --password ... --email ada@example.com --name "Ada Lovelace" \
        --group Employees --group "Domain Users"

The client is confidential, signs ID tokens with RS256, needs PKCE and asks for consent.
"""

import argparse
import os


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.oidc_provider")
    parser.add_argument("--database", required=True, help="SQLite file to create")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--issuer", required=True, help="public URL of the provider, with /o")
    parser.add_argument("--redirect-uri", required=True, help="the client's callback URL")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--username", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--email", required=True)
    parser.add_argument("--name", required=True, help="first and last name")
    parser.add_argument("--group", action="append", default=[], help="repeat for each group")
    return parser.parse_args()


def prepare(arguments: argparse.Namespace) -> None:
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from oauth2_provider.models import Application

    call_command("migrate", verbosity=0)
    first_name, _, last_name = arguments.name.partition(" ")
    user = User.objects.create_user(
        username=arguments.username,
        password=arguments.password,
        email=arguments.email,
        first_name=first_name,
        last_name=last_name,
    )
    user.groups.set([Group.objects.get_or_create(name=name)[0] for name in arguments.group])
    Application.objects.create(
        name="Policy portal",
        client_id=arguments.client_id,
        client_secret=arguments.client_secret,  # stored hashed
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=arguments.redirect_uri,
        algorithm=Application.RS256_ALGORITHM,
        skip_authorization=False,
    )


def main() -> None:
    arguments = parse_arguments()
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.oidc_provider.settings"
    os.environ["OIDC_PROVIDER_DATABASE"] = arguments.database
    os.environ["OIDC_PROVIDER_ISSUER"] = arguments.issuer

    import django
    from django.core.management import call_command

    django.setup()
    prepare(arguments)
    call_command("runserver", f"{arguments.host}:{arguments.port}", use_reloader=False)


if __name__ == "__main__":
    main()
