"""`{% webhook_endpoints %}`: the webhook endpoints, for the integrations page to list."""

from django import template

from acknowledgements.models import WebhookEndpoint

register = template.Library()


@register.inclusion_tag("acknowledgements/manage/webhooks_summary.html")
def webhook_endpoints() -> dict:
    return {"endpoints": WebhookEndpoint.objects.select_related("created_by")}
