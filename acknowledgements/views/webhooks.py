"""Policy administrators register the webhook endpoints other systems are told of events at,
see each one's delivery log and send a delivery again. A signing secret is shown once."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from acknowledgements.exceptions import ActionRefused
from acknowledgements.forms.webhooks import WebhookEndpointChangeForm, WebhookEndpointForm
from acknowledgements.models import WebhookDelivery, WebhookEndpoint
from acknowledgements.views.access import administrators_only
from acknowledgements.views.shown_once import page_with_secret_once
from acknowledgements.webhooks import actions

LOG_LENGTH = 100


@require_http_methods(["GET", "POST"])
@administrators_only
def manage_webhooks(request):
    return page_with_secret_once(
        request,
        form_class=WebhookEndpointForm,
        create=lambda data: actions.register_endpoint(
            actor=request.user, url=data["url"], events=data["events"]
        ),
        refused_field="url",
        template="acknowledgements/manage/webhooks.html",
        context={"endpoints": WebhookEndpoint.objects.select_related("created_by")},
    )


@require_http_methods(["GET", "POST"])
@administrators_only
def manage_webhook(request, pk: int):
    endpoint = get_object_or_404(WebhookEndpoint.objects.select_related("created_by"), pk=pk)
    initial = {"events": endpoint.events, "active": endpoint.active}
    form = WebhookEndpointChangeForm(
        request.POST if request.method == "POST" else None, initial=initial
    )
    if request.method == "POST" and form.is_valid():
        try:
            actions.change_endpoint(
                actor=request.user,
                endpoint=endpoint,
                events=form.cleaned_data["events"],
                active=form.cleaned_data["active"],
            )
        except ActionRefused as refused:
            form.add_error("events", str(refused))
        else:
            messages.success(request, _("The endpoint is saved."))
            return redirect("acknowledgements:manage_webhook", pk=endpoint.pk)
    return render(
        request,
        "acknowledgements/manage/webhooks_endpoint.html",
        {
            "endpoint": endpoint,
            "form": form,
            "deliveries": endpoint.deliveries.all()[:LOG_LENGTH],
            "log_length": LOG_LENGTH,
        },
        status=400 if form.errors else 200,
    )


@require_POST
@administrators_only
def manage_webhook_remove(request, pk: int):
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    actions.remove_endpoint(actor=request.user, endpoint=endpoint)
    messages.success(
        request, _("The endpoint %(url)s is removed, with its delivery log.") % {"url": endpoint}
    )
    return redirect("acknowledgements:manage_webhooks")


@require_POST
@administrators_only
def manage_webhook_resend(request, pk: int):
    found = get_object_or_404(WebhookDelivery, pk=pk)
    try:
        actions.resend_delivery(actor=request.user, delivery_id=found.pk)
    except ActionRefused as refused:
        messages.error(request, str(refused))
    else:
        messages.success(
            request,
            _("The event %(event)s is queued to be sent again.") % {"event": found.event_id},
        )
    return redirect("acknowledgements:manage_webhook", pk=found.endpoint_id)


urlpatterns = [
    path("manage/integrations/webhooks/", manage_webhooks, name="manage_webhooks"),
    path("manage/integrations/webhooks/<int:pk>/", manage_webhook, name="manage_webhook"),
    path(
        "manage/integrations/webhooks/<int:pk>/remove/",
        manage_webhook_remove,
        name="manage_webhook_remove",
    ),
    path(
        "manage/integrations/webhooks/deliveries/<int:pk>/resend/",
        manage_webhook_resend,
        name="manage_webhook_resend",
    ),
]
