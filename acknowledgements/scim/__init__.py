"""SCIM 2.0 provisioning (RFC 7643, RFC 7644): the directory (Microsoft Entra ID, Okta...) adds,
changes and retires people and their audiences at /scim/v2/, through the people actions.

Payloads are parsed, validated, patched and serialised with `scim2-models` (pydantic models of
every SCIM resource and message, maintained by the python-scim project): it reads the PATCH
forms Microsoft Entra ID sends (capitalised `op`, `"False"` for a boolean, a `remove` carrying
a `value`) under an explicit `ScimPolicy`, parses filters and paths into a syntax tree, and
turns every refusal into the RFC's error with its `scimType`. The portal only maps that tree
onto its own tables (`filters.py`) and its people onto SCIM resources (`resources.py`).
`scim2-filter-parser` and `scim2-server` were not chosen: the first duplicates the filter
grammar scim2-models already has, and the second brings its own storage and WSGI application,
where every change here must go through the audited people actions.
"""
