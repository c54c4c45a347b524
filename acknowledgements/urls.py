from acknowledgements.views import account, concerns, health, manage, people, reports, signing

app_name = "acknowledgements"

urlpatterns = [
    *health.urlpatterns,
    *signing.urlpatterns,
    *account.urlpatterns,
    *concerns.urlpatterns,
    *manage.urlpatterns,
    *people.urlpatterns,
    *reports.urlpatterns,
]
