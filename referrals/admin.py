from decimal import Decimal, InvalidOperation

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from common.admin_tools import ServiceSavedAdmin, admin_actor, csv_response, group_arg
from common.charts import bar_chart
from common.groups import GroupedConditionInline
from referrals import selectors, services
from referrals.models import (
    LinkClick,
    Partnership,
    Payout,
    Referral,
    ReferralProgram,
    Reward,
    Rule,
    RuleCondition,
    RuleConditionGroup,
)


class RuleInline(admin.TabularInline):
    model = Rule
    fields = ["name", "reward_type", "amount", "schedule", "active"]
    extra = 0
    show_change_link = True


# The partner page: /admin/referrals/referralprogram/<program_id>/partner/<client_id>/
PARTNER_URL = "admin:referrals_referralprogram_partner"
PARTNER_PAY_URL = "admin:referrals_referralprogram_partner_pay"
# How many partners the program page lists; the Partnership changelist has them all.
PARTNERS_SHOWN = 50


def partner_url(program_id: int, partner_id: int) -> str:
    return reverse(PARTNER_URL, args=[program_id, partner_id])


def partner_page_link(program_id: int, partner_id: int, text: str = "partner page") -> SafeString:
    return format_html('<a href="{}">{}</a>', partner_url(program_id, partner_id), text)


def money_list(amounts) -> str:
    return selectors.money_text(amounts) or "—"


# Paying: a confirmation page first ---------------------------------------------------------------

PAY_TEMPLATE = "admin/referrals/pay_confirm.html"


def new_reference() -> str:
    """A reference to start from; the operator may replace it with the bank transfer's."""
    return f"PAY-{timezone.localtime():%Y%m%d-%H%M%S}"


def confirmed_totals(request) -> dict[str, Decimal]:
    """The per-currency totals the confirmation page showed (hidden fields `total_<ISO>`)."""
    totals = {}
    for name, value in request.POST.items():
        if name.startswith("total_"):
            try:
                totals[name.removeprefix("total_")] = Decimal(value)
            except InvalidOperation:
                raise ValidationError("The confirmation form was damaged; start again.") from None
    return totals


def pay_confirmed(admin_obj, request, pairs, *, action: str) -> bool:
    """Pay `pairs` as confirmed on the page; False (with the reason shown) when nothing was paid."""
    try:
        through = int(request.POST.get("through", ""))
        made = services.payouts_create_many(
            partners=pairs,
            reference=request.POST.get("reference", ""),
            actor=admin_actor(request, action),
            through=through,
            confirmed=confirmed_totals(request),
        )
    except (ValueError, ValidationError) as exc:
        reason = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
        admin_obj.message_user(request, f"Nothing was paid: {reason}", messages.ERROR)
        return False
    if made:
        paid = ", ".join(
            f"{selectors.Money(p.amount, p.currency.iso, p.currency.minor_units)} to {p.partner}"
            for p in made
        )
        admin_obj.message_user(
            request, f"Paid {paid} (reference {made[0].reference}).", messages.SUCCESS
        )
    else:
        admin_obj.message_user(request, "Nothing was left to pay.", messages.WARNING)
    return True


def pay_page(admin_obj, request, preview: selectors.PayoutPreview, **context):
    return TemplateResponse(
        request,
        PAY_TEMPLATE,
        {
            **admin_obj.admin_site.each_context(request),
            "opts": admin_obj.opts,
            "title": "Pay unpaid rewards?",
            "preview": preview,
            "totals": [(m, f"total_{m.currency}") for m in preview.totals],
            "reference": request.POST.get("reference") or new_reference(),
            **context,
        },
    )


def month_charts(months: list[selectors.MonthTotal], title: str) -> SafeString:
    """A bar chart per currency over the same months (a month without rewards is a zero bar)."""
    if not months:
        return bar_chart([], title=title)
    labels = sorted({m.month: m.label for m in months}.items())
    by_key = {(m.month, m.currency): m.amount.shown for m in months}
    charts = [
        bar_chart(
            [(label, by_key.get((month, currency), 0)) for month, label in labels],
            title=f"{title} ({currency})",
            unit=f" {currency}",
        )
        for currency in sorted({m.currency for m in months})
    ]
    return format_html_join("", "{}", ((c,) for c in charts))


class PartnershipInline(admin.TabularInline):
    model = Partnership
    fields = ["partner", "code", "link", "enrolled_at", "page"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = "partners enrolled (with the code and link they hand out)"

    def has_add_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        # The partner's name and the link (from the program's URL) on every row, without a query each.
        return super().get_queryset(request).select_related("partner", "program")

    @admin.display(description="referrals, rewards, payouts")
    def page(self, obj):
        return partner_page_link(obj.program_id, obj.partner_id) if obj.pk else "—"


@admin.register(ReferralProgram)
class ReferralProgramAdmin(ServiceSavedAdmin):
    list_display = [
        "id",
        "name",
        "provider",
        "start_date",
        "end_date",
        "assign_by_default",
        "status",
    ]
    list_filter = ["provider", "status", "assign_by_default"]
    search_fields = ["name", "promocode"]
    inlines = [RuleInline, PartnershipInline]
    # Shown in their own section of a saved program's page, never on the add page.
    overview_fields = ["rewards_chart", "partners_overview"]
    readonly_fields = overview_fields

    def get_fields(self, request, obj=None):
        return [f for f in super().get_fields(request, obj) if f not in self.overview_fields]

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        return [*fieldsets, ("Partners and rewards", {"fields": self.overview_fields})]

    @admin.display(description="rewards per month")
    def rewards_chart(self, obj):
        if not obj.pk:
            return "—"
        months = selectors.program_rewards_per_month(program=obj, last=12)
        return month_charts(months, "Rewards per month, last 12 months with rewards")

    @admin.display(description="partners")
    def partners_overview(self, obj):
        if not obj.pk:
            return "—"
        rows, total = selectors.partner_rows(program=obj, limit=PARTNERS_SHOWN)
        if not rows:
            return "No partners yet."
        body = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td class="referrals">{}</td>'
            '<td class="earned">{}</td><td class="unpaid">{}</td></tr>',
            (
                (
                    partner_url(obj.pk, r.partner_id),
                    r.name,
                    r.code or "—",
                    r.referral_count,
                    money_list(r.earned),
                    money_list(r.unpaid),
                )
                for r in rows
            ),
        )
        more = ""
        if total > len(rows):
            more = format_html(
                '<p>The {} with the most referrals of {}; <a href="{}?program__id__exact={}">'
                "every enrolled partner</a>.</p>",
                len(rows),
                total,
                reverse("admin:referrals_partnership_changelist"),
                obj.pk,
            )
        return format_html(
            '<table id="program-partners"><thead><tr><th>partner</th><th>code</th>'
            "<th>referrals</th><th>earned</th><th>unpaid</th></tr></thead>"
            "<tbody>{}</tbody></table>{}",
            body,
            more,
        )

    # The partner page ---------------------------------------------------------------------------

    def get_urls(self):
        own = [
            path(
                "<int:program_id>/partner/<int:client_id>/",
                self.admin_site.admin_view(self.partner_view),
                name="referrals_referralprogram_partner",
            ),
            path(
                "<int:program_id>/partner/<int:client_id>/pay/",
                self.admin_site.admin_view(self.partner_pay_view),
                name="referrals_referralprogram_partner_pay",
            ),
        ]
        return own + super().get_urls()

    def _program_and_partner(self, request, program_id: int, client_id: int):
        program = get_object_or_404(self.get_queryset(request), pk=program_id)
        if not self.has_view_permission(request, program):
            raise PermissionDenied
        # 404 for a client who is neither enrolled in the program nor has brought referrals in it.
        partner = get_object_or_404(selectors.partners(program), pk=client_id)
        return program, partner

    @staticmethod
    def can_pay(request) -> bool:
        return request.user.has_perm("referrals.add_payout")

    def partner_view(self, request, program_id: int, client_id: int):
        program, partner = self._program_and_partner(request, program_id, client_id)
        summary = selectors.partner_summary(program=program, partner=partner)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"{partner.name}, partner in {program.name}",
            "program": program,
            "partner": partner,
            "summary": summary,
            "earned": money_list(summary.earned),
            "unpaid": money_list(summary.unpaid),
            "charts": month_charts(summary.months, "Rewards per month"),
            "can_pay": self.can_pay(request),
            "pay_url": reverse(PARTNER_PAY_URL, args=[program.pk, partner.pk]),
            "referrals_shown": selectors.REFERRALS_SHOWN,
        }
        return TemplateResponse(request, "admin/referrals/partner.html", context)

    def partner_pay_view(self, request, program_id: int, client_id: int):
        """GET: what would be paid, per currency, and a reference to confirm; POST: pay that."""
        program, partner = self._program_and_partner(request, program_id, client_id)
        if not self.can_pay(request):
            raise PermissionDenied
        back = partner_url(program.pk, partner.pk)
        if request.method == "POST" and request.POST.get("confirm") == "yes":
            pay_confirmed(self, request, [(program, partner)], action="reward.payout")
            return HttpResponseRedirect(back)
        preview = selectors.payout_preview([(program, partner)])
        if not preview.lines:
            self.message_user(
                request,
                f"Nothing to pay: {partner.name} has no unpaid rewards in {program.name} "
                "(every reward has been paid already).",
                messages.WARNING,
            )
            return HttpResponseRedirect(back)
        return pay_page(self, request, preview, cancel_url=back, form_url="", selected=[])

    @staticmethod
    def create(actor, data):
        return services.program_create(actor=actor, **data)

    @staticmethod
    def update(current, actor, data):
        return services.program_update(program=current, actor=actor, **data)

    def inline_writers(self, request, parent):
        actor = admin_actor(request, "referralprogram.rule")
        return {
            Rule: (
                lambda data: services.rule_create(program=parent, actor=actor, **data),
                lambda rule, data: services.rule_update(rule=rule, actor=actor, **data),
                lambda rules: services.rule_delete_many(rules=rules, actor=actor),
            )
        }


class RuleConditionGroupInline(admin.TabularInline):
    model = RuleConditionGroup
    extra = 0
    verbose_name_plural = "condition groups (conditions in a group are OR-ed, groups AND-ed)"


class OrderPeriodsField(forms.Field):
    """`orderperiods` as the func door writes them: months joined by commas, e.g. `1, 12`."""

    def prepare_value(self, value):
        if isinstance(value, list):
            return ", ".join(str(v) for v in value)
        return value

    def to_python(self, value):
        text = (value or "").replace(" ", "")
        parts = [p for p in text.split(",") if p]
        if not all(p.isdigit() and len(p) < 5 for p in parts):
            raise ValidationError("Order periods are months joined by commas, e.g. 1, 12.")
        return [int(p) for p in parts]

    def has_changed(self, initial, data):
        return (initial or []) != self.to_python(data)


class RuleConditionForm(forms.ModelForm):
    orderperiods = OrderPeriodsField(
        required=False, label="order periods", help_text="Months, e.g. 1, 12; empty: any."
    )

    class Meta:
        model = RuleCondition
        fields = [
            "ctype",
            "comparison",
            "amount_ctype_1",
            "amount_ctype_4",
            "item_count",
            "referral_count",
            "orderperiods",
            "group",
        ]


class RuleConditionInline(GroupedConditionInline, admin.TabularInline):
    model = RuleCondition
    form = RuleConditionForm
    fields = RuleConditionForm.Meta.fields
    extra = 0


@admin.register(Rule)
class RuleAdmin(ServiceSavedAdmin):
    list_display = ["id", "name", "program", "description", "schedule", "active"]
    list_select_related = ["program__provider__currency", "program__currency"]
    list_filter = ["program", "reward_type", "active"]
    readonly_fields = ["description"]
    inlines = [RuleConditionGroupInline, RuleConditionInline]

    @staticmethod
    def create(actor, data):
        data = dict(data)
        return services.rule_create(program=data.pop("program"), actor=actor, **data)

    @staticmethod
    def update(current, actor, data):
        return services.rule_update(rule=current, actor=actor, **data)

    def inline_writers(self, request, parent):
        actor = admin_actor(request, "referralprogram.rule.condition")
        return {
            RuleCondition: (
                lambda data: services.rule_condition_create(
                    rule=parent, actor=actor, **group_arg(data)
                ),
                lambda condition, data: services.rule_condition_update(
                    condition=condition, actor=actor, **group_arg(data)
                ),
                lambda conditions: services.rule_condition_delete_many(
                    conditions=conditions, actor=actor
                ),
            )
        }


@admin.register(Partnership)
class PartnershipAdmin(admin.ModelAdmin):
    list_display = ["id", "partner", "program", "code", "link", "enrolled_at", "page"]
    list_filter = ["program"]
    search_fields = ["partner__name", "code"]
    readonly_fields = ["link"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="partner page")
    def page(self, obj):
        return partner_page_link(obj.program_id, obj.partner_id, "referrals, rewards, payouts")


@admin.register(LinkClick)
class LinkClickAdmin(admin.ModelAdmin):
    list_display = ["id", "visitor", "partner", "program", "clicked_at", "referral"]
    list_filter = ["program"]
    search_fields = ["visitor", "partner__name"]
    date_hierarchy = "clicked_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Referral)
class ReferralAdmin(admin.ModelAdmin):
    list_display = ["id", "client", "partner", "program", "source", "joined_at"]
    list_filter = ["program", "source"]
    search_fields = ["client__name", "partner__name"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class PaidFilter(admin.SimpleListFilter):
    title = "paid"
    parameter_name = "paid"

    def lookups(self, request, model_admin):
        return [("yes", "paid"), ("no", "unpaid")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(payout__isnull=self.value() == "no")
        return queryset


class LedgerAdmin(admin.ModelAdmin):
    """History (the reward ledger, payouts): listed, never added, changed or deleted here (the
    database refuses deletes and changes too); corrections are new rows."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Reward)
class RewardAdmin(LedgerAdmin):
    list_display = [
        "id",
        "beneficiary",
        "referral",
        "rule",
        "amount",
        "currency",
        "kind",
        "created_at",
        "payout",
    ]
    list_filter = [
        PaidFilter,
        "rule__program",
        ("beneficiary", admin.RelatedOnlyFieldListFilter),
        "role",
        "kind",
    ]
    search_fields = ["beneficiary__name"]
    date_hierarchy = "created_at"
    actions = ["export_csv", "pay_partners"]

    def has_pay_permission(self, request) -> bool:
        return request.user.has_perm("referrals.add_payout")

    @admin.action(
        description="Pay the unpaid rewards of the selected rewards' partners", permissions=["pay"]
    )
    def pay_partners(self, request, queryset):
        """A confirmation page with the amounts per currency, then every partner paid or none
        (service payouts_create_many)."""
        credited = queryset.select_related("rule__program", "beneficiary")
        pairs = {(r.rule.program, r.beneficiary) for r in credited}
        if request.POST.get("confirm") == "yes":
            pay_confirmed(self, request, pairs, action="reward.payout")
            return None
        preview = selectors.payout_preview(pairs)
        if not preview.lines:
            self.message_user(request, "Nothing was left to pay.", messages.WARNING)
            return None
        return pay_page(
            self,
            request,
            preview,
            cancel_url=request.get_full_path(),
            form_url=request.get_full_path(),
            selected=request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            action="pay_partners",
        )

    @admin.action(description="Export selected rewards as CSV")
    def export_csv(self, request, queryset):
        return csv_response(
            "rewards.csv",
            [
                "id",
                "beneficiary",
                "role",
                "referral_client",
                "program",
                "rule",
                "expense",
                "amount",
                "currency",
                "kind",
                "created_at",
                "payout",
            ],
            queryset.select_related("beneficiary", "referral__client", "rule__program", "currency"),
            lambda r: [
                r.pk,
                r.beneficiary.name,
                r.role,
                r.referral.client.name,
                r.rule.program.name,
                r.rule.name,
                r.expense_id,
                r.amount,
                r.currency.iso,
                r.kind,
                r.created_at.isoformat(),
                r.payout_id or "",
            ],
        )


@admin.register(Payout)
class PayoutAdmin(LedgerAdmin):
    list_display = [
        "id",
        "partner",
        "program",
        "amount",
        "currency",
        "created_at",
        "paid_by",
        "reference",
    ]
    list_filter = ["program", "currency"]
    search_fields = ["reference", "partner__name", "paid_by"]
    date_hierarchy = "created_at"
