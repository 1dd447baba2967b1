from django.contrib import admin

from billing import services
from billing.models import Client, ClientGroup, Currency, Expense, Provider, Service, Tariff
from common.admin_tools import ServiceSavedAdmin


@admin.register(Currency)
class CurrencyAdmin(admin.ModelAdmin):
    list_display = ["id", "iso", "name", "minor_units"]
    search_fields = ["iso", "name"]


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "currency"]
    search_fields = ["name"]


@admin.register(ClientGroup)
class ClientGroupAdmin(admin.ModelAdmin):
    list_display = ["id", "name"]
    search_fields = ["name"]


@admin.register(Client)
class ClientAdmin(ServiceSavedAdmin):
    """Through the services, so that a new client is enrolled in the default referral program."""

    list_display = ["id", "name", "email", "provider", "registration_date"]
    list_filter = ["provider", "groups"]
    search_fields = ["name", "email"]
    filter_horizontal = ["groups"]

    @staticmethod
    def create(actor, data):
        return services.substrate_create(model=Client, actor=actor, **data)

    @staticmethod
    def update(current, actor, data):
        return services.substrate_update(instance=current, actor=actor, **data)


@admin.register(Tariff)
class TariffAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "provider", "price", "charge"]
    list_filter = ["provider", "charge"]
    search_fields = ["name"]


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    list_display = ["id", "client", "tariff", "period", "status", "paid", "opened_at"]
    list_filter = ["status", "paid", "tariff__provider"]
    search_fields = ["client__name", "tariff__name"]
    raw_id_fields = ["client"]


@admin.register(Expense)
class ExpenseAdmin(admin.ModelAdmin):
    list_display = ["id", "client", "service", "amount", "currency", "created_at"]
    list_filter = ["currency"]
    search_fields = ["client__name"]
    raw_id_fields = ["client", "service"]
    date_hierarchy = "created_at"
