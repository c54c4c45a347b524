"""The portal's views, one module per area; each module lists its own URL patterns."""
