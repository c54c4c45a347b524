from django.core.management.base import BaseCommand, CommandError

from acknowledgements.exceptions import ActionRefused
from acknowledgements.models import WebhookEndpoint
from acknowledgements.webhooks import actions
from acknowledgements.webhooks.events import EVENT_TYPES


def _events(value: str) -> list[str]:
    return [event.strip() for event in value.split(",") if event.strip()]


class Command(BaseCommand):
    help = (
        "Webhook endpoints: `add --url URL --events EVENT[,EVENT]` registers one and prints its "
        "signing secret alone on the last line (it is shown only once); `list` lists them; "
        "`disable --id ID` and `enable --id ID` turn one off and on; `remove --id ID` removes "
        f"one with its delivery log. The events are {', '.join(EVENT_TYPES)}."
    )

    def add_arguments(self, parser):
        commands = parser.add_subparsers(dest="command", required=True)
        add = commands.add_parser("add", help="Register an endpoint and print its secret.")
        add.add_argument("--url", required=True)
        add.add_argument(
            "--events",
            required=True,
            help=f"Comma-separated, among {', '.join(EVENT_TYPES)}.",
        )
        commands.add_parser("list", help="List the endpoints (never their secrets).")
        for name in ("disable", "enable", "remove"):
            one = commands.add_parser(name, help=f"{name.capitalize()} an endpoint.")
            one.add_argument("--id", type=int, required=True, dest="endpoint_id")

    def handle(self, *args, command: str, **options):
        try:
            if command == "add":
                endpoint, secret = actions.register_endpoint(
                    actor=None, url=options["url"], events=_events(options["events"])
                )
                self.stdout.write(
                    f"Registered endpoint {endpoint.pk} for {', '.join(endpoint.events)}; "
                    "its signing secret is shown once:"
                )
                self.stdout.write(secret)
            elif command == "list":
                for endpoint in WebhookEndpoint.objects.all():
                    state = "active" if endpoint.active else f"off ({endpoint.disabled_reason})"
                    self.stdout.write(
                        "\t".join(
                            [
                                str(endpoint.pk),
                                endpoint.url,
                                ",".join(endpoint.events),
                                state,
                                f"created {endpoint.created_at.isoformat(timespec='seconds')}",
                            ]
                        )
                    )
            else:
                endpoint = WebhookEndpoint.objects.filter(pk=options["endpoint_id"]).first()
                if endpoint is None:
                    raise CommandError(f"No endpoint has the id {options['endpoint_id']}.")
                if command == "remove":
                    removed = f"endpoint {endpoint.pk} ({endpoint.url})"
                    actions.remove_endpoint(actor=None, endpoint=endpoint)
                    self.stdout.write(f"Removed {removed}.")
                else:
                    changed = actions.change_endpoint(
                        actor=None,
                        endpoint=endpoint,
                        events=endpoint.events,
                        active=command == "enable",
                    )
                    state = "active" if changed.active else "off"
                    self.stdout.write(f"Endpoint {changed.pk} ({changed.url}) is {state}.")
        except ActionRefused as refused:
            raise CommandError(str(refused)) from refused
