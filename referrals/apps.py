from django.apps import AppConfig


class ReferralsConfig(AppConfig):
    name = "referrals"

    def ready(self):
        # Referrals build on billing: billing calls them through its hook, never by import.
        from billing.hooks import on_client_created
        from referrals.services import client_registered

        on_client_created(client_registered)
