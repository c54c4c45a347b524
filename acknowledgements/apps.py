from django.apps import AppConfig


class AcknowledgementsConfig(AppConfig):
    name = "acknowledgements"
    verbose_name = "Policy acknowledgements"

    def ready(self) -> None:
        from acknowledgements.standings import tallies

        tallies.connect_signals()
