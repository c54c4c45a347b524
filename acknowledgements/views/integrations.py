"""Policy administrators manage the tokens other systems call the portal with: the directory's
SCIM client, and systems reading the read API. A token is shown once, when it is created; the
list shows when each was last used."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from acknowledgements.api import tokens
from acknowledgements.forms.integrations import ApiTokenForm
from acknowledgements.models import ApiToken
from acknowledgements.views.access import administrators_only
from acknowledgements.views.shown_once import page_with_secret_once


@require_http_methods(["GET", "POST"])
@administrators_only
def manage_integrations(request):
    return page_with_secret_once(
        request,
        form_class=ApiTokenForm,
        create=lambda data: tokens.create_api_token(
            actor=request.user, name=data["name"], scope=data["scope"]
        ),
        refused_field="name",
        template="acknowledgements/manage/integrations.html",
        context={
            "tokens": ApiToken.objects.select_related("created_by"),
            "scim_base_url": request.build_absolute_uri(
                reverse("acknowledgements:scim_users")
            ).removesuffix("Users"),
            "api_docs_url": request.build_absolute_uri(
                reverse("acknowledgements:api:openapi-view")
            ),
        },
    )


@require_POST
@administrators_only
def manage_integration_revoke(request, pk: int):
    token = get_object_or_404(ApiToken, pk=pk)
    tokens.revoke_api_token(actor=request.user, token=token)
    messages.success(
        request, _("The token %(name)s is revoked: it can no longer be used.") % {"name": token}
    )
    return redirect("acknowledgements:manage_integrations")


urlpatterns = [
    path("manage/integrations/", manage_integrations, name="manage_integrations"),
    path(
        "manage/integrations/<int:pk>/revoke/",
        manage_integration_revoke,
        name="manage_integration_revoke",
    ),
]
