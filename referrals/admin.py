import datetime
import functools
from decimal import Decimal, InvalidOperation

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.text import slugify

from common.admin_tools import (
    KeptAdmin,
    ListedOnlyAdmin,
    ListedOnlyInline,
    ServiceSavedAdmin,
    admin_actor,
    csv_response,
    group_arg,
    money_column,
)
from common.charts import bar_chart
from common.groups import GroupedConditionForm, GroupedConditionInline
from common.money import moment_format, money_format
from referrals import selectors, services
from referrals.models import (
    AttachmentRefusal,
    LinkClick,
    Partnership,
    Payout,
    PayoutBatch,
    Referral,
    ReferralProgram,
    Reward,
    RewardState,
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
PARTNER_DETAILS_URL = "admin:referrals_referralprogram_partner_details"
# How many partners the program page lists; the Partnership changelist has them all.
PARTNERS_SHOWN = 50


def partner_url(program_id: int, partner_id: int) -> str:
    return reverse(PARTNER_URL, args=[program_id, partner_id])


def partner_page_link(program_id: int, partner_id: int, text: str = "partner page") -> SafeString:
    return format_html('<a href="{}">{}</a>', partner_url(program_id, partner_id), text)


class MaskedDetails:
    """`details`: a partnership's or a payout's payout details, masked as every list shows them."""

    @admin.display(description="payout details")
    def details(self, obj) -> str:
        return selectors.masked(obj.payout_details) or "—"


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
    """Pay `pairs` as confirmed on the page (the rows and the moment it showed); False (with the
    reason shown) when nothing was paid."""
    try:
        through = int(request.POST.get("through", ""))
        at = datetime.datetime.fromisoformat(request.POST.get("at", ""))
        if at.tzinfo is None:
            raise ValueError("the confirmation's moment has no time zone")
        made = services.payouts_create_many(
            partners=pairs,
            reference=request.POST.get("reference", ""),
            actor=admin_actor(request, action),
            through=through,
            confirmed=confirmed_totals(request),
            at=at,
        )
    except (ValueError, ValidationError) as exc:
        reason = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
        admin_obj.message_user(request, f"Nothing was paid: {reason}", messages.ERROR)
        return False
    if made.payouts:
        paid = ", ".join(
            f"{selectors.Money(p.amount, p.currency.iso, p.currency.minor_units)} to {p.partner}"
            for p in made.payouts
        )
        admin_obj.message_user(
            request,
            format_html(
                'Paid {} (reference {}): <a href="{}">the batch and its payout file</a>.',
                paid,
                made.batch.reference,
                reverse("admin:referrals_payoutbatch_change", args=[made.batch.pk]),
            ),
            messages.SUCCESS,
        )
    else:
        admin_obj.message_user(request, "Nothing was left to pay.", messages.WARNING)
    for skip in made.skipped:
        admin_obj.message_user(request, f"Not paid: {skip}.", messages.WARNING)
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
            "at": preview.at.isoformat(),
            **context,
        },
    )


def nothing_to_pay(admin_obj, request, preview: selectors.PayoutPreview, who: str) -> None:
    """Why a payment would pay nothing: every balance skipped (and why), or none due."""
    if preview.skipped:
        for skip in preview.skipped:
            admin_obj.message_user(request, f"Nothing to pay: {skip}.", messages.WARNING)
        return
    admin_obj.message_user(
        request,
        f"Nothing to pay: {who} no payable rewards (every reward has been paid already, or is "
        "still held).",
        messages.WARNING,
    )


def month_charts(months: list[selectors.MonthTotal], title: str) -> SafeString:
    """A bar chart per currency over the same months (a month without rewards is a zero bar)."""
    if not months:
        return bar_chart([], title=title)
    labels = sorted({m.month: m.label for m in months}.items())
    by_key = {(m.month, m.currency): m.amount.shown for m in months}
    minor_units = {m.currency: m.amount.minor_units for m in months}
    charts = [
        bar_chart(
            [(label, by_key.get((month, currency), 0)) for month, label in labels],
            title=f"{title} ({currency})",
            shown=functools.partial(
                money_format, currency=currency, minor_units=minor_units[currency]
            ),
        )
        for currency in sorted({m.currency for m in months})
    ]
    return format_html_join("", "{}", ((c,) for c in charts))


class PartnershipInline(ListedOnlyInline):
    model = Partnership
    fields = ["partner", "code", "link", "enrolled_at", "page"]
    readonly_fields = fields
    verbose_name_plural = "partners enrolled (with the code and link they hand out)"

    def has_change_permission(self, request, obj=None):
        return False  # shown only: partners enrol through the doors (referrals.services)

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
            '<td class="earned">{}</td><td class="held">{}</td><td class="payable">{}</td>'
            '<td class="paid">{}</td><td class="unpaid">{}</td><td class="details">{}</td></tr>',
            (
                (
                    partner_url(obj.pk, r.partner_id),
                    r.name,
                    r.code or "—",
                    r.referral_count,
                    money_list(r.earned),
                    money_list(r.balances.held),
                    money_list(r.balances.payable),
                    money_list(r.balances.paid),
                    money_list(r.unpaid),
                    r.payout_details or "—",
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
            "<th>referrals</th><th>earned</th><th>held</th><th>payable</th><th>paid</th>"
            "<th>unpaid</th><th>payout details</th></tr></thead>"
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
            path(
                "<int:program_id>/partner/<int:client_id>/payout-details/",
                self.admin_site.admin_view(self.partner_details_view),
                name="referrals_referralprogram_partner_details",
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
            "balances": [
                (name, money_list(getattr(summary.balances, name))) for name in selectors.BALANCES
            ],
            "earned": money_list(summary.earned),
            "unpaid": money_list(summary.unpaid),
            "payable": any(m.amount > 0 for m in summary.balances.payable),
            "details_url": reverse(PARTNER_DETAILS_URL, args=[program.pk, partner.pk]),
            "can_set_details": self.can_set_details(request),
            "refusals_shown": selectors.REFUSALS_SHOWN,
            "charts": month_charts(summary.months, "Rewards per month"),
            "can_pay": self.can_pay(request),
            "pay_url": reverse(PARTNER_PAY_URL, args=[program.pk, partner.pk]),
            "referrals_shown": selectors.REFERRALS_SHOWN,
        }
        return TemplateResponse(request, "admin/referrals/partner.html", context)

    @staticmethod
    def can_set_details(request) -> bool:
        return request.user.has_perm("referrals.change_partnership")

    def partner_details_view(self, request, program_id: int, client_id: int):
        """POST `payout_details`: where the partner's payouts go (services.payout_details_set)."""
        program, partner = self._program_and_partner(request, program_id, client_id)
        if not self.can_set_details(request) or request.method != "POST":
            raise PermissionDenied
        try:
            services.payout_details_set(
                program=program,
                partner=partner,
                details=request.POST.get("payout_details", ""),
                actor=admin_actor(request, "partnership.payout_details"),
            )
        except ValidationError as exc:
            self.message_user(request, "; ".join(exc.messages), messages.ERROR)
        else:
            self.message_user(request, "The payout details have been saved.", messages.SUCCESS)
        return HttpResponseRedirect(partner_url(program.pk, partner.pk))

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
            nothing_to_pay(self, request, preview, f"{partner.name} has in {program.name}")
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
        if not all(p.isascii() and p.isdigit() and len(p) < 5 for p in parts):
            raise ValidationError("Order periods are months joined by commas, e.g. 1, 12.")
        return [int(p) for p in parts]

    def has_changed(self, initial, data):
        return (initial or []) != self.to_python(data)


class RuleConditionForm(GroupedConditionForm):
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
            "group_name",
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
            RuleConditionGroup: (
                lambda data: services.rule_condition_group_create(rule=parent, actor=actor, **data),
                lambda group, data: services.rule_condition_group_update(
                    group=group, actor=actor, **data
                ),
                lambda groups: services.rule_condition_group_delete_many(
                    groups=groups, actor=actor
                ),
            ),
            RuleCondition: (
                lambda data: services.rule_condition_create(
                    rule=parent, actor=actor, **group_arg(data, parent.groups.all())
                ),
                lambda condition, data: services.rule_condition_update(
                    condition=condition, actor=actor, **group_arg(data, parent.groups.all())
                ),
                lambda conditions: services.rule_condition_delete_many(
                    conditions=conditions, actor=actor
                ),
            ),
        }


class PartnershipChangeList(ChangeList):
    """The page's partners' balances summed in one query, not one per row."""

    def get_results(self, request):
        super().get_results(request)
        balances = selectors.partnership_balances(self.result_list)
        for partnership in self.result_list:
            partnership.balances = balances[(partnership.program_id, partnership.partner_id)]


@admin.register(Partnership)
class PartnershipAdmin(MaskedDetails, ListedOnlyAdmin):
    """Partners enrolled; their payout details are masked here (the partner page sets them)."""

    list_display = [
        "id",
        "partner",
        "program",
        "code",
        "earned",
        "payable",
        "paid",
        "details",
        "enrolled_at",
        "page",
    ]
    list_select_related = ["partner", "program"]
    list_filter = ["program"]
    search_fields = ["partner__name", "code"]
    fields = ["partner", "program", "code", "link", "details", "enrolled_at"]
    readonly_fields = fields

    @admin.display(description="partner page")
    def page(self, obj):
        return partner_page_link(obj.program_id, obj.partner_id, "referrals, rewards, payouts")

    def get_changelist(self, request, **kwargs):
        return PartnershipChangeList

    @admin.display(description="earned")
    def earned(self, obj):
        return selectors.money_text(obj.balances.earned) or "-"

    @admin.display(description="payable")
    def payable(self, obj):
        return selectors.money_text(obj.balances.payable) or "-"

    @admin.display(description="paid")
    def paid(self, obj):
        return selectors.money_text(obj.balances.paid) or "-"


@admin.register(AttachmentRefusal)
class AttachmentRefusalAdmin(KeptAdmin):
    """Attachments the fraud screens refused: history, listed only."""

    list_display = [
        "id",
        "refused_at",
        "partner",
        "client",
        "program",
        "screen",
        "reason",
        "address",
    ]
    list_filter = ["screen", "program", "source"]
    search_fields = ["partner__name", "client__name", "address"]
    date_hierarchy = "refused_at"
    list_select_related = ["partner", "client", "program"]


@admin.register(LinkClick)
class LinkClickAdmin(ListedOnlyAdmin):
    list_display = ["id", "visitor", "partner", "program", "clicked_at", "referral"]
    list_filter = ["program"]
    search_fields = ["visitor", "partner__name"]
    date_hierarchy = "clicked_at"


@admin.register(Referral)
class ReferralAdmin(ListedOnlyAdmin):
    list_display = ["id", "client", "partner", "program", "source", "joined_at"]
    list_filter = ["program", "source"]
    search_fields = ["client__name", "partner__name"]


class PaidFilter(admin.SimpleListFilter):
    title = "paid"
    parameter_name = "paid"

    def lookups(self, request, model_admin):
        return [("yes", "paid"), ("no", "unpaid")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(payout__isnull=self.value() == "no")
        return queryset


class StateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return RewardState.choices

    def queryset(self, request, queryset):
        if self.value() in RewardState.values:
            return queryset.filter(state=self.value())
        return queryset


class LedgerAdmin(KeptAdmin):
    """History (the reward ledger, payouts): listed, never added, changed or deleted here (the
    database refuses deletes and changes too); corrections are new rows."""


@admin.register(Reward)
class RewardAdmin(LedgerAdmin):
    list_display = [
        "id",
        "beneficiary",
        "referral",
        "rule",
        "amount_shown",
        "currency",
        "kind",
        "created_at",
        "payable_at",
        "state",
        "reverses",
        "payout",
    ]
    list_filter = [
        StateFilter,
        PaidFilter,
        "rule__program",
        ("beneficiary", admin.RelatedOnlyFieldListFilter),
        "role",
        "kind",
    ]
    search_fields = ["beneficiary__name"]
    date_hierarchy = "created_at"
    actions = ["export_csv", "pay_partners"]
    list_select_related = ["beneficiary", "referral__client", "rule", "currency"]
    amount_shown = money_column("amount", "currency", "amount")

    def get_queryset(self, request):
        return selectors.with_states(super().get_queryset(request))

    @admin.display(description="state", ordering="state")
    def state(self, obj):
        return obj.state

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
            nothing_to_pay(self, request, preview, "the selected partners have")
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
                "payable_at",
                "state",
                "reverses",
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
                money_format(r.amount, r.currency.iso, minor_units=r.currency.minor_units),
                r.currency.iso,
                r.kind,
                moment_format(r.created_at),
                moment_format(r.payable_at),
                r.state,
                r.reverses_id or "",
                r.payout_id or "",
            ],
        )


class PayoutMarking:
    """Actions marking payouts sent or failed (services.payouts_mark_many / payout_batch_mark);
    a failed payout's rewards are payable again."""

    def has_mark_permission(self, request) -> bool:
        return request.user.has_perm("referrals.change_payout")

    def _mark(self, request, queryset, status: str):
        try:
            moved = self.mark(request, queryset, status)
        except ValidationError as exc:
            self.message_user(
                request, "Nothing was marked: " + "; ".join(exc.messages), messages.ERROR
            )
            return
        self.message_user(request, f"{len(moved)} payouts marked {status}.", messages.SUCCESS)

    @admin.action(description="Mark sent", permissions=["mark"])
    def mark_sent(self, request, queryset):
        self._mark(request, queryset, Payout.Status.SENT)

    @admin.action(description="Mark failed (their rewards are payable again)", permissions=["mark"])
    def mark_failed(self, request, queryset):
        self._mark(request, queryset, Payout.Status.FAILED)


@admin.register(Payout)
class PayoutAdmin(MaskedDetails, PayoutMarking, LedgerAdmin):
    list_display = [
        "id",
        "partner",
        "program",
        "amount_shown",
        "currency",
        "created_at",
        "paid_by",
        "batch",
        "details",
        "status",
        "rewards_count",
    ]
    list_filter = ["status", "program", "currency"]
    search_fields = ["batch__reference", "partner__name", "paid_by"]
    date_hierarchy = "created_at"
    list_select_related = ["partner", "program", "currency", "batch"]
    amount_shown = money_column("amount", "currency", "amount")
    exclude = ["payout_details"]
    readonly_fields = ["details"]
    actions = ["mark_sent", "mark_failed"]

    def mark(self, request, queryset, status):
        return services.payouts_mark_many(
            payouts=queryset, status=status, actor=admin_actor(request, f"payout.{status}")
        )


class PayoutInline(MaskedDetails, ListedOnlyInline):
    model = Payout
    fields = ["partner", "program", "amount", "currency", "details", "status", "rewards_count"]
    readonly_fields = fields


class BatchChangeList(ChangeList):
    """The page's batches summed in one query, not one per row."""

    def get_results(self, request):
        super().get_results(request)
        rows = {row.batch.pk: row for row in selectors.batch_rows(self.result_list)}
        for batch in self.result_list:
            batch.summary = rows[batch.pk]


@admin.register(PayoutBatch)
class PayoutBatchAdmin(PayoutMarking, LedgerAdmin):
    """Payments: each batch's payouts, its file for the bank's bulk upload (CSV, details
    unmasked, formulas neutralised), and marking it sent or failed."""

    list_display = ["id", "reference", "created_at", "created_by", "payouts", "totals", "statuses"]
    search_fields = ["reference", "created_by"]
    date_hierarchy = "created_at"
    inlines = [PayoutInline]
    actions = ["export_file", "mark_sent", "mark_failed"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(payout_count=Count("payouts"))

    def get_changelist(self, request, **kwargs):
        return BatchChangeList

    def _row(self, obj) -> selectors.BatchRow:
        found = getattr(obj, "summary", None)
        return found if found is not None else selectors.batch_rows([obj])[0]

    @admin.display(description="payouts", ordering="payout_count")
    def payouts(self, obj):
        return obj.payout_count

    @admin.display(description="total (failed left out)")
    def totals(self, obj):
        return money_list(self._row(obj).totals)

    @admin.display(description="statuses")
    def statuses(self, obj):
        return ", ".join(f"{n} {status}" for status, n in sorted(self._row(obj).statuses.items()))

    def mark(self, request, queryset, status):
        actor = admin_actor(request, f"payoutbatch.{status}")
        moved = []
        with transaction.atomic():
            for batch in queryset.order_by("pk"):
                moved += services.payout_batch_mark(batch=batch, status=status, actor=actor)
        return moved

    @admin.action(description="Download the payout file (CSV for the bank's bulk upload)")
    def export_file(self, request, queryset):
        batches = list(queryset.order_by("pk"))
        name = batches[0].reference if len(batches) == 1 else "payouts"
        return csv_response(
            f"{slugify(name) or 'payouts'}.csv",
            selectors.PAYOUT_FILE_HEADER,
            (row for batch in batches for row in selectors.payout_file_rows(batch)),
        )
