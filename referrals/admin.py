from django.contrib import admin

from billing.models import Client
from common.admin_tools import ServiceSavedAdmin, admin_actor, csv_response, group_arg
from referrals import services
from referrals.models import (
    LinkClick,
    Partnership,
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


class PartnershipInline(admin.TabularInline):
    model = Partnership
    fields = ["partner", "code", "link", "enrolled_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = "partners enrolled (with the code and link they hand out)"

    def has_add_permission(self, request, obj=None):
        return False


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


class RuleConditionInline(admin.TabularInline):
    model = RuleCondition
    fields = [
        "ctype",
        "comparison",
        "amount_ctype_1",
        "amount_ctype_4",
        "item_count",
        "referral_count",
        "group",
    ]
    extra = 0

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        groups = formset.form.base_fields.get("group")
        if groups is not None:
            groups.queryset = (
                RuleConditionGroup.objects.filter(rule=obj) if obj else groups.queryset.none()
            )
        return formset


@admin.register(Rule)
class RuleAdmin(ServiceSavedAdmin):
    list_display = ["id", "name", "program", "reward_type", "amount", "schedule", "active"]
    list_filter = ["program", "reward_type", "active"]
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
    list_display = ["id", "partner", "program", "code", "link", "enrolled_at"]
    list_filter = ["program"]
    search_fields = ["partner__name", "code"]
    readonly_fields = ["link"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


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


@admin.register(Reward)
class RewardAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "partner",
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
        ("partner", admin.RelatedOnlyFieldListFilter),
        "beneficiary",
        "kind",
    ]
    search_fields = ["partner__name"]
    date_hierarchy = "created_at"
    actions = ["export_csv", "pay_partners"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Pay the unpaid rewards of the selected rewards' partners")
    def pay_partners(self, request, queryset):
        actor = admin_actor(request, "reward.payout")
        pairs = sorted(set(queryset.values_list("rule__program_id", "partner_id")))
        made = []
        for program_id, partner_id in pairs:
            made += services.payouts_create(
                program=ReferralProgram.objects.get(pk=program_id),
                partner=Client.objects.get(pk=partner_id),
                actor=actor,
            )
        paid = ", ".join(f"{p.amount.normalize():f} {p.currency} to {p.partner}" for p in made)
        self.message_user(request, f"Paid {paid}." if made else "Nothing was left to pay.")

    @admin.action(description="Export selected rewards as CSV")
    def export_csv(self, request, queryset):
        return csv_response(
            "rewards.csv",
            [
                "id",
                "partner",
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
            queryset.select_related("partner", "referral__client", "rule__program", "currency"),
            lambda r: [
                r.pk,
                r.partner.name,
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
