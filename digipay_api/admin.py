"""DigiPay companies, their currency ids and API tokens. Writes go through digipay_api.services;
a new token's key is shown once, on the page after it is created."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils.html import format_html

from billing.models import Currency
from common.admin_tools import ListedOnlyInline, admin_actor
from digipay_api import services
from digipay_api.models import ApiToken, Company, CompanyCurrency, DigiPayProgram


def _adopt(obj, saved) -> None:
    """Make the admin's unsaved object the one a service saved, for the pages that follow."""
    for field in saved._meta.concrete_fields:
        setattr(obj, field.attname, getattr(saved, field.attname))
    obj._state.adding = False


class ReadOnlyInline(ListedOnlyInline):
    show_change_link = True

    def has_change_permission(self, request, obj=None):
        return False


class CompanyCurrencyInline(ReadOnlyInline):
    model = CompanyCurrency
    fields = ["currency", "public_id"]
    readonly_fields = fields


class ApiTokenInline(ReadOnlyInline):
    model = ApiToken
    fields = ["prefix", "created_at", "revoked_at"]
    readonly_fields = fields


class CompanyAddForm(forms.ModelForm):
    currency = forms.ModelChoiceField(
        Currency.objects.all(), help_text="The currency of the company's new provider."
    )

    class Meta:
        model = Company
        fields = ["name"]


@admin.register(Company)
class CompanyAdmin(admin.ModelAdmin):
    list_display = ["name", "public_id", "provider", "created_at"]
    search_fields = ["name", "public_id"]
    inlines = [CompanyCurrencyInline, ApiTokenInline]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = CompanyAddForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "currency"]
        return ["name", "public_id", "provider", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else ["name", "public_id", "provider", "created_at"]

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def save_model(self, request, obj, form, change):
        if change:
            return
        try:
            saved = services.company_create(
                name=form.cleaned_data["name"],
                currency=form.cleaned_data["currency"],
                actor=admin_actor(request, "company.add"),
            )
        except ValidationError as exc:
            self.message_user(request, "; ".join(exc.messages), messages.ERROR)
            raise
        _adopt(obj, saved)


@admin.register(CompanyCurrency)
class CompanyCurrencyAdmin(admin.ModelAdmin):
    """A currency id is made once and stays with its currency."""

    list_display = ["public_id", "company", "currency"]
    list_filter = ["company"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else ["company", "currency", "public_id"]

    def get_fields(self, request, obj=None):
        return ["company", "currency"] if obj is None else ["company", "currency", "public_id"]

    def save_model(self, request, obj, form, change):
        if change:
            return
        saved = services.company_currency_add(
            company=obj.company,
            currency=obj.currency,
            actor=admin_actor(request, "companycurrency.add"),
        )
        _adopt(obj, saved)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "company", "created_at", "revoked_at", "live"]
    list_filter = ["company", ("revoked_at", admin.EmptyFieldListFilter)]
    actions = ["revoke"]

    @admin.display(boolean=True)
    def live(self, token: ApiToken) -> bool:
        return token.is_live

    def get_fields(self, request, obj=None):
        return ["company"] if obj is None else ["company", "prefix", "created_at", "revoked_at"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else ["company", "prefix", "created_at", "revoked_at"]

    def save_model(self, request, obj, form, change):
        if change:
            return
        saved, key = services.token_create(
            company=obj.company, actor=admin_actor(request, "apitoken.add")
        )
        _adopt(obj, saved)
        self.message_user(
            request,
            format_html(
                "The new token's key is <code>{}</code>. Copy it now: it is not kept and cannot "
                "be shown again. Send it as <code>Authorization: Token KEY</code> with "
                "<code>CompanyID: {}</code>.",
                key,
                saved.company.public_id,
            ),
            messages.WARNING,
        )

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke(self, request, queryset):
        revoked = services.tokens_revoke(
            tokens=list(queryset.select_related("company")),
            actor=admin_actor(request, "apitoken.revoke"),
        )
        self.message_user(request, f"{revoked} token(s) revoked.", messages.SUCCESS)


@admin.register(DigiPayProgram)
class DigiPayProgramAdmin(admin.ModelAdmin):
    """Made by the DigiPay door; the program itself is edited under Referral programs."""

    list_display = ["public_id", "company", "program", "rule", "created_at"]
    list_filter = ["company"]
    search_fields = ["public_id", "program__name"]
    readonly_fields = ["public_id", "company", "program", "rule", "created_at"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
