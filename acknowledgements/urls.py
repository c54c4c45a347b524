from django.templatetags.static import static
from django.urls import path
from django.utils.functional import lazy
from django.views.decorators.http import require_GET
from django.views.generic import RedirectView

from acknowledgements.views import (
    account,
    concern_handling,
    concerns,
    exports,
    health,
    integrations,
    manage,
    outbox,
    people,
    reports,
    revisions,
    scim,
    signing,
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
    *signing.urlpatterns,
    *account.urlpatterns,
    *concerns.urlpatterns,
    *manage.urlpatterns,
    *revisions.urlpatterns,
    *concern_handling.urlpatterns,
    *people.urlpatterns,
    *reports.urlpatterns,
    *exports.urlpatterns,
    *integrations.urlpatterns,
    *scim.urlpatterns,
    *outbox.urlpatterns,
]
