"""The read API at /api/v1/: token-authenticated, read-only JSON for other systems (the HR
system, a GRC tool) asking who is covered; described by the OpenAPI schema it generates."""
