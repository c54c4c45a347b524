from django.templatetags.static import static
from django.urls import path, re_path
from django.utils.functional import lazy
from django.views.decorators.http import require_GET
from django.views.generic import RedirectView

from acknowledgements.api.endpoints import api, unknown_address
from acknowledgements.views import (
    account,
    concern_handling,
    concerns,
    exports,
    health,
    integrations,
    ledger,
    manage,
    outbox,
    people,
    reports,
    revisions,
    scim,
    signing,
    team,
    trust,
    webhooks,
)

app_name = "acknowledgements"

urlpatterns = [
    # Browsers ask for /favicon.ico whatever the page links (base.html links the SVG); not a
    # permanent redirect, because the static file's hashed name changes with its content.
    path(
        "favicon.ico",
        require_GET(RedirectView.as_view(url=lazy(static, str)("img/favicon.svg"))),
        name="favicon",
    ),
    *health.urlpatterns,
    *ledger.urlpatterns,
    *signing.urlpatterns,
    *trust.urlpatterns,
    *account.urlpatterns,
    *concerns.urlpatterns,
    *manage.urlpatterns,
    *revisions.urlpatterns,
    *concern_handling.urlpatterns,
    *people.urlpatterns,
    *reports.urlpatterns,
    *team.urlpatterns,
    *exports.urlpatterns,
    *integrations.urlpatterns,
    *webhooks.urlpatterns,
    *scim.urlpatterns,
    # The read API; its base address and any other under /api/ answer a 404 in its own JSON.
    path("api/v1/", unknown_address, name="api_base"),
    path("api/v1/", api.urls),
    re_path(r"^api/(?P<rest>.*)$", unknown_address, name="api_unknown"),
    *outbox.urlpatterns,
]
