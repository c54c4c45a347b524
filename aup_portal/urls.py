from django.contrib import admin
from django.urls import include, path

from acknowledgements.views.account import set_language

urlpatterns = [
    # The language switch of the header and the sign-in page (Django's set_language, which
    # also saves a signed-in person's choice). Among the account pages, which the signing gate
    # and the staff MFA requirement leave open: anyone may read the portal in their language.
    path("accounts/language/", set_language, name="set_language"),
    path("accounts/", include("allauth.urls")),
    path("django-admin/", admin.site.urls),
    path("", include("acknowledgements.urls")),
]

handler500 = "acknowledgements.errors.handler500"
