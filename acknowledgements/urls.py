from django.urls import path

from . import views

app_name = "acknowledgements"

urlpatterns = [
    path("", views.home, name="home"),
    path("policies/<slug:slug>/", views.policy_detail, name="policy_detail"),
    path("policies/<slug:slug>/v/<str:version>/", views.revision_detail, name="revision_detail"),
    path("policies/<slug:slug>/v/<str:version>/sign/", views.sign, name="sign"),
    path("policies/<slug:slug>/v/<str:version>/decline/", views.decline, name="decline"),
    path("acknowledgements/", views.my_acknowledgements, name="my_acknowledgements"),
    path(
        "acknowledgements/<str:receipt_number>/",
        views.acknowledgement_detail,
        name="acknowledgement_detail",
    ),
    path(
        "acknowledgements/<str:receipt_number>/receipt.pdf",
        views.receipt_download,
        name="receipt_download",
    ),
    path("verify/", views.verify, name="verify"),
]
