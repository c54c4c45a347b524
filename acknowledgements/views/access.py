"""Who may open which pages: one decorator per role, so every view of an area says it once."""

from functools import wraps

from django.contrib.auth.decorators import login_required, permission_required


def _signed_in_with(permission: str):
    def decorator(view):
        @wraps(view)
        @login_required
        @permission_required(permission, raise_exception=True)
        def wrapped(request, *args, **kwargs):
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


# Signed-in people with the role only: others get 403, anonymous visitors the sign-in page.
administrators_only = _signed_in_with("acknowledgements.publish_policyrevision")
readers_of_reports_only = _signed_in_with("acknowledgements.view_reports")
