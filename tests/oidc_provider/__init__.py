"""A small, real OpenID Connect provider (django-oauth-toolkit) that the browser tests start.

It runs as its own process with its own settings, database and cookies:
`python -m tests.oidc_provider --help` says how (tests/browser/test_sso_journey.py does it).
"""
