"""The signing benchmark's peer: django-termsandconditions in a Django project of its own.

It runs from its own virtualenv (requirements.txt, made by `server.ensure_venv`) on its own
database of the same PostgreSQL server, served by the same gunicorn settings as the portal.
"""
