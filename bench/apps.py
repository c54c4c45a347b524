import os

from django.apps import AppConfig


class BenchConfig(AppConfig):
    name = "bench"
    verbose_name = "Benchmarks"

    def ready(self) -> None:
        if os.environ.get("BENCH_PROPOSED_LOCK") == "1":
            from bench import proposed

            proposed.install()
