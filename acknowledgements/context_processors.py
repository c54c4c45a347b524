from django.conf import settings


def portal(request) -> dict:
    return {
        "company_name": settings.PORTAL_COMPANY_NAME,
        "portal_open_signup": settings.PORTAL_OPEN_SIGNUP,
    }
