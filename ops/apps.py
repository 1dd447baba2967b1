from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        from common.throttle import brake_refused
        from ops import schedule  # noqa: F401 - registers the scheduled work's job kind
        from ops.metrics import count_brake_refusal

        brake_refused.connect(count_brake_refusal, dispatch_uid="ops-brake-refusals")
