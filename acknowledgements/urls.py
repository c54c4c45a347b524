from acknowledgements.views import account, concerns, health, manage, reports, signing

app_name = "acknowledgements"

urlpatterns = [
    *health.urlpatterns,
    *signing.urlpatterns,
    *account.urlpatterns,
    *concerns.urlpatterns,
    *manage.urlpatterns,
    *reports.urlpatterns,
]
