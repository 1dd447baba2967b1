from django.apps import AppConfig


class DemoConfig(AppConfig):
    """Demo data for `make run`: the one place that may import every app and door."""

    name = "demo"
