"""The portal's URLs plus one view that fails, to see the error page a bug leaves a person with."""

from django.urls import path

from aup_portal import urls as portal


def broken(request):
    raise RuntimeError("a bug in a view")


urlpatterns = [path("broken/", broken), *portal.urlpatterns]
handler500 = portal.handler500
