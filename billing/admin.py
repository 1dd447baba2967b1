from django.contrib import admin

from billing import services
from billing.models import Client, ClientGroup, Currency, Expense, Provider, Service, Tariff
from common.admin_tools import ServiceSavedAdmin, admin_actor


class SubstrateAdmin(ServiceSavedAdmin):
    """Adds, changes and deletes through the billing services, as the func door does: the same
    checks, and a history line for each (who, from where, through the admin)."""

    def create(self, actor, data):
        return services.substrate_create(model=self.model, actor=actor, **data)

    def update(self, current, actor, data):
        return services.substrate_update(instance=current, actor=actor, **data)

    def delete_model(self, request, obj):
        self.delete_queryset(request, [obj])

    def delete_queryset(self, request, queryset):
        actor = admin_actor(request, f"{self.model._meta.model_name}.delete")
        services.substrate_delete_many(objects=list(queryset), actor=actor)


@admin.register(Currency)
class CurrencyAdmin(SubstrateAdmin):
    list_display = ["id", "iso", "name", "minor_units"]
    search_fields = ["iso", "name"]


@admin.register(Provider)
class ProviderAdmin(SubstrateAdmin):
    list_display = ["id", "name", "currency"]
    search_fields = ["name"]


@admin.register(ClientGroup)
class ClientGroupAdmin(SubstrateAdmin):
    list_display = ["id", "name"]
    search_fields = ["name"]


@admin.register(Client)
class ClientAdmin(SubstrateAdmin):
    """Through the services, so that a new client is enrolled in the default referral program."""

    list_display = ["id", "name", "email", "provider", "registration_date"]
    list_filter = ["provider", "groups"]
    search_fields = ["name", "email"]
    filter_horizontal = ["groups"]


@admin.register(Tariff)
class TariffAdmin(SubstrateAdmin):
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
