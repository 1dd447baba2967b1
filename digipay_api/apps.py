from django.apps import AppConfig


class DigipayApiConfig(AppConfig):
    name = "digipay_api"
    verbose_name = "DigiPay door"
