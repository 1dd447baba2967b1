from django.apps import AppConfig


class PromotionsConfig(AppConfig):
    name = "promotions"

    def ready(self) -> None:
        from promotions import jobs  # noqa: F401 - registers the background job kinds
