"""Read-only reporting for auditors and policy administrators.

- `figures`: completion per policy and audience, people lists, a person's history and the audit
  log, all computed at a moment from coverage.py's rules over the ledger and acknowledgements.
- `charts`: the geometry of the server-drawn SVG charts.
- `exports`: CSV (streamed), XLSX, the PDF summary and the audit package (ZIP).

Nothing here writes, except the audit record of an export, which goes through
`services.record_export`.
"""
