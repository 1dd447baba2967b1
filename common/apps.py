from django.apps import AppConfig


class CommonConfig(AppConfig):
    name = "common"
    verbose_name = "Change history"

    def ready(self) -> None:
        from common import authentication, signin

        signin.connect_signals()
        authentication.connect_signals()
