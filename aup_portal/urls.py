from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("accounts/", include("allauth.urls")),
    path("django-admin/", admin.site.urls),
    path("", include("acknowledgements.urls")),
]

handler500 = "acknowledgements.errors.handler500"
