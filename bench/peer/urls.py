"""The peer's URLs: the package's own, mounted where its documentation puts them."""

from django.urls import include, path

urlpatterns = [path("terms/", include("termsandconditions.urls"))]
