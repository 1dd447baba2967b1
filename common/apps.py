from django.apps import AppConfig


class CommonConfig(AppConfig):
    name = "common"
    verbose_name = "Change history"

    def ready(self) -> None:
        from common.signin import connect_signals

        connect_signals()
