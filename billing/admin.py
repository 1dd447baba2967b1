from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from billing import services
from billing.models import Client, ClientGroup, Currency, Expense, Provider, Service, Tariff
from billing.selectors import money_shown
from common.admin_tools import ServiceSavedAdmin, admin_actor, money_column


class RefundFilter(admin.SimpleListFilter):
    title = "kind"
    parameter_name = "kind"

    def lookups(self, request, model_admin):
        return [("charge", "charges"), ("refund", "refunds")]

    def queryset(self, request, queryset):
        if self.value() in ("charge", "refund"):
            return queryset.filter(refunds__isnull=self.value() == "charge")
        return queryset


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
    list_display = ["id", "name", "currency", "max_discount"]
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
    list_display = ["id", "name", "provider", "price_shown", "charge"]
    list_select_related = ["provider__currency"]
    price_shown = money_column("price", "provider.currency", "price")
    list_filter = ["provider", "charge"]
    search_fields = ["name"]


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    list_display = ["id", "client", "tariff", "period", "status", "paid", "opened_at"]
    list_filter = ["status", "paid", "tariff__provider"]
    search_fields = ["client__name", "tariff__name"]
    raw_id_fields = ["client"]


@admin.register(Expense)
class ExpenseAdmin(ServiceSavedAdmin):
    """Charges and refunds, taken in through billing.services.expense_create (a refund names the
    charge it refunds and is never more than what is left of it). An expense is history once
    taken: corrections are refunds, so the admin neither changes nor deletes one."""

    list_display = [
        "id",
        "client",
        "service",
        "amount_shown",
        "currency",
        "created_at",
        "refunds",
        "refunded_shown",
    ]
    list_select_related = ["client", "service__tariff", "currency"]
    amount_shown = money_column("amount", "currency", "amount")
    refunded_shown = money_column("refunded", "currency", "refunded")
    list_filter = ["currency", RefundFilter]
    search_fields = ["client__name"]
    raw_id_fields = ["client", "service", "refunds"]
    date_hierarchy = "created_at"
    fields = ["client", "service", "amount", "currency", "created_at", "refunds", "refunded"]
    readonly_fields = ["refunded"]
    actions = ["refund_in_full"]

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def create(self, actor, data):
        return services.expense_create(actor=actor, **data)

    def has_refund_permission(self, request) -> bool:
        return request.user.has_perm("billing.add_expense")

    @admin.action(description="Refund what is left of the selected charges", permissions=["refund"])
    def refund_in_full(self, request, queryset):
        actor = admin_actor(request, "expense.refund")
        try:
            refunds = services.expense_refund_rest_many(
                expenses=queryset.order_by("pk"), actor=actor
            )
        except ValidationError as exc:
            self.message_user(
                request, "Nothing was refunded: " + "; ".join(exc.messages), messages.ERROR
            )
            return
        if refunds:
            shown = ", ".join(
                f"{money_shown(-r.amount, r.currency)} of #{r.refunds_id}" for r in refunds
            )
            self.message_user(request, f"Refunded {shown}.", messages.SUCCESS)
        else:
            self.message_user(request, "Nothing was left to refund.", messages.WARNING)
