"""The portal's performance benchmarks (see README.md). Nothing here is imported by the product."""
