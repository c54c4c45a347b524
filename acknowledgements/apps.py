from django.apps import AppConfig


class AcknowledgementsConfig(AppConfig):
    name = "acknowledgements"
    verbose_name = "Policy acknowledgements"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from acknowledgements.middleware import note_session
        from acknowledgements.standings import tallies

        tallies.connect_signals()
        user_logged_in.connect(note_session, dispatch_uid="portal_note_session")
