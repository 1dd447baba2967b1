"""Operators' admin: every save goes through promotions.services, so history and rules hold."""

import copy
import csv
import datetime
import io
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, Sum
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from billing.models import Client, Service, Tariff
from billing.selectors import money_shown, order_periods
from common.admin import job_status
from common.admin_tools import (
    MonthsField,
    ServiceSavedAdmin,
    admin_actor,
    csv_response,
    group_arg,
)
from common.charts import bar_chart
from common.groups import GroupedConditionForm, GroupedConditionInline
from common.models import Job
from common.money import moment_format
from common.selectors import history_of
from common.throttle import Throttled
from promotions import codegen, selectors, services
from promotions.backtest import BACKTEST
from promotions.engine import Order
from promotions.engine.present import quote_as_dict
from promotions.engine.types import Kind
from promotions.jobs import background_from, backtest_start, generate_codes_start
from promotions.models import (
    Condition,
    ConditionGroup,
    Discount,
    PromoCode,
    PromoCodeUsage,
    Promotion,
)


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return Promotion.Status.choices

    def queryset(self, request, queryset):
        if self.value() in Promotion.Status.values:
            return queryset.with_status(self.value())
        return queryset


class DiscountForm(forms.ModelForm):
    period = MonthsField(
        required=False,
        label="order periods",
        help_text="Tick periods or type months (e.g. 1, 12); none: every period.",
    )

    class Meta:
        model = Discount
        fields = [
            "type",
            "pricelist",
            "percentage",
            "actiontype",
            "period",
            "validity",
            "validitylength",
        ]


class DiscountInline(admin.TabularInline):
    model = Discount
    form = DiscountForm
    extra = 0
    filter_horizontal = ["pricelist"]

    def get_formset(self, request, obj=None, **kwargs):
        """The period boxes are the tariffs' periods, read once per page."""
        formset = super().get_formset(request, obj, **kwargs)
        field = copy.deepcopy(formset.form.base_fields["period"])
        field.widget.choices = [(months, f"{months} mo") for months in order_periods()]
        formset.form.base_fields["period"] = field
        return formset


class ConditionGroupInline(admin.TabularInline):
    model = ConditionGroup
    extra = 0
    verbose_name_plural = "condition groups (conditions in a group are OR-ed, groups AND-ed)"


class ConditionForm(GroupedConditionForm):
    class Meta:
        model = Condition
        fields = [
            "ctype",
            "comparison",
            "pricelist",
            "amount",
            "summa",
            "currency",
            "periodtype",
            "periodlength",
            "account_group",
            "affiliate",
        ]


class ConditionInline(GroupedConditionInline, admin.TabularInline):
    model = Condition
    form = ConditionForm
    extra = 0
    fields = [
        "ctype",
        "comparison",
        "pricelist",
        "amount",
        "summa",
        "currency",
        "periodtype",
        "periodlength",
        "account_group",
        "affiliate",
        "group_name",
    ]


class PromoCodeInline(admin.TabularInline):
    """Rows for adding codes only: a promotion may hold millions, which no page can list as forms.

    The existing codes are in the at-a-glance panel, the codes list and the CSV export.
    """

    model = PromoCode
    extra = 1
    fields = services.CSV_COLUMNS  # a code's own settings: what a row adds and a CSV carries
    verbose_name_plural = "add promo codes (one code per row; templates: the Generate action)"

    def get_queryset(self, request):
        return super().get_queryset(request).none()


def searched(field) -> AutocompleteSelect:
    """A picker that searches as one types: the admin's autocomplete, by the search fields of the
    admin of the model `field` (a foreign key) points to."""
    return AutocompleteSelect(field, admin.site)


class TryOrderForm(forms.Form):
    client = forms.ModelChoiceField(
        queryset=Client.objects.select_related("provider"),
        widget=searched(Service._meta.get_field("client")),
    )
    codes = forms.CharField(required=False, help_text="Promo codes, separated by commas.")
    at = forms.DateTimeField(required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        zone = timezone.get_current_timezone_name()
        self.fields[
            "at"
        ].help_text = f"When the order is placed (YYYY-MM-DD HH:MM, {zone} time); empty is now."

    def clean(self):
        data = super().clean()
        data["at"] = data.get("at") or timezone.now()
        return data

    @property
    def moment(self) -> datetime.datetime:
        return self.cleaned_data["at"]

    def order(self, lines: forms.BaseFormSet) -> Order:
        """The form's values as the order contract takes them; its rules are the services'."""
        client = self.cleaned_data["client"]
        rows = [f.cleaned_data for f in lines.forms if f.cleaned_data.get("tariff")]
        return services.order_build(
            client=client.pk,
            provider=client.provider_id,
            at=self.moment,
            codes=self.cleaned_data["codes"].split(","),
            lines=[
                {
                    "tariff": row["tariff"].pk,
                    "period": row["period"],
                    "price": row["price"]
                    if row["price"] is not None
                    else row["tariff"].price * row["period"],
                    "currency": client.provider.currency.iso,
                    "kind": row["kind"],
                    "service": row["service"].pk if row["service"] else None,
                }
                for row in rows
            ],
        )


def order_messages(exc: ValidationError) -> list[str]:
    """The order contract's errors in the page's words: `lines.0.period` is line 1's period."""
    if not hasattr(exc, "error_dict"):
        return exc.messages
    messages = []
    for field, texts in exc.message_dict.items():
        parts = field.split(".")
        where = f"line {int(parts[1]) + 1}, {parts[2]}: " if len(parts) == 3 else ""
        messages += [where + text for text in texts]
    return messages


class TryLineForm(forms.Form):
    tariff = forms.ModelChoiceField(
        queryset=Tariff.objects.all(),
        required=False,
        widget=searched(Service._meta.get_field("tariff")),
    )
    period = forms.IntegerField(initial=1, help_text="months")
    price = forms.DecimalField(
        required=False, help_text="empty: the tariff's price times the period"
    )
    kind = forms.ChoiceField(choices=[(Kind.NEW, "new"), (Kind.RENEWAL, "renewal")])
    service = forms.ModelChoiceField(
        queryset=Service.objects.all(),
        required=False,
        widget=searched(PromoCodeUsage._meta.get_field("service")),
        help_text="renewals: the renewed service (search by client or tariff)",
    )


TryLineFormSet = forms.formset_factory(TryLineForm, extra=3, max_num=10)


def backtest_charts(result: dict) -> list:
    """The discount it would have given per month, one chart per currency."""
    currencies = sorted({iso for m in result["per_month"].values() for iso in m["discount"]})
    return [
        bar_chart(
            [
                (month, Decimal(values["discount"].get(iso, "0")))
                for month, values in result["per_month"].items()
            ],
            title=f"Discount it would have given per month, {iso}",
            shown=lambda amount, iso=iso: money_shown(amount, iso),
        )
        for iso in currencies
    ]


class ImportCodesForm(forms.Form):
    file = forms.FileField(help_text="CSV with a header row; only the code column is required.")

    def rows(self) -> list[dict[str, str]]:
        raw = self.cleaned_data["file"].read()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ValidationError("The file is not UTF-8 text.") from None
        if "\x00" in text:
            line = text.count("\n", 0, text.index("\x00")) + 1
            raise ValidationError(
                f"line {line}: the file holds a NUL byte, which no CSV text holds; "
                "nothing was imported."
            )
        reader = csv.DictReader(io.StringIO(text))
        try:
            if "code" not in (reader.fieldnames or []):
                raise ValidationError("The header row has no code column.")
            return list(reader)
        except csv.Error as exc:
            # The reader counts a line once it has read it whole: the bad one is the next.
            raise ValidationError(
                f"line {reader.line_num + 1}: {_csv_problem(exc)}; nothing was imported."
            ) from None


def _csv_problem(exc: csv.Error) -> str:
    """What the csv module could not read, in the words of the file's author."""
    text = str(exc)
    if "field larger than field limit" in text:
        return f"a field is longer than {csv.field_size_limit() // 1024} KB"
    return f"the file is not CSV ({text})"


class BacktestForm(forms.Form):
    start = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To (included)", widget=forms.DateInput(attrs={"type": "date"}))


class GenerateCodesForm(forms.Form):
    template = forms.CharField(max_length=100, help_text='Each "?" becomes a random character.')
    count = forms.IntegerField(min_value=1, max_value=services.MAX_CODES_PER_CALL, initial=10)
    onlydigit = forms.BooleanField(required=False, label="Only digits")
    uselimit = forms.IntegerField(min_value=1, required=False, label="Usage limit")
    account_uselimit = forms.IntegerField(
        min_value=1, required=False, label="Usage limit per client"
    )


class PromotionChangeList(ChangeList):
    """What the page's promotions discounted and how often, in one query, not one per row."""

    def get_results(self, request):
        super().get_results(request)
        figures = selectors.promotion_figures(promotions=list(self.result_list))
        for promotion in self.result_list:
            promotion.figures = figures.get(promotion.pk, selectors.PromotionFigures())


@admin.register(Promotion)
class PromotionAdmin(ServiceSavedAdmin):
    change_list_template = "admin/promotions/promotion/change_list.html"
    change_form_template = "admin/promotions/promotion/change_form.html"
    list_display = [
        "id",
        "name",
        "provider",
        "fromdate",
        "todate",
        "status_display",
        "priority",
        "combine",
        "code_count",
        "uses",
        "given",
        "budget_burn",
    ]
    list_filter = [StatusFilter, "provider", "archived"]
    search_fields = ["name", "promocodes__code"]
    date_hierarchy = "fromdate"
    fields = [
        "at_a_glance",
        "redemptions_chart",
        "name",
        "provider",
        "fromdate",
        "todate",
        "priority",
        "combine",
        "budget",
        "budget_period",
        "client_budget",
        "budget_chart",
        "archived",
        "history_table",
    ]
    readonly_fields = [
        "at_a_glance",
        "redemptions_chart",
        "budget_chart",
        "archived",
        "history_table",
    ]
    inlines = [DiscountInline, ConditionGroupInline, ConditionInline, PromoCodeInline]
    actions = ["archive", "restore", "generate_codes"]

    def get_queryset(self, request):
        queryset = super().get_queryset(request).select_related("provider__currency")
        return selectors.with_budget_spent(selectors.promotions_with_code_counts(queryset))

    def get_changelist(self, request, **kwargs):
        return PromotionChangeList

    @admin.display(description="status")
    def status_display(self, obj: Promotion) -> str:
        return obj.status

    @admin.display(description="codes", ordering="code_total")
    def code_count(self, obj: Promotion) -> int:
        return obj.code_total

    @admin.display(description="uses")
    def uses(self, obj: Promotion) -> int:
        """Orders it discounted (live redemptions), with a code or without."""
        return obj.figures.uses

    @admin.display(description="discount given")
    def given(self, obj: Promotion) -> str:
        amounts = obj.figures.given
        return ", ".join(money_shown(amounts[c], c) for c in sorted(amounts)) or "-"

    @admin.display(description="at a glance")
    def at_a_glance(self, obj: Promotion) -> str:
        if not obj.pk:
            return "-"
        window = f"{obj.fromdate} to {obj.todate or 'open end'}"
        discounts = [str(d) for d in obj.discounts.all()] or ["none yet"]
        codes = obj.promocodes.order_by("-use_count", "code")
        # Counted by the database: a promotion may hold millions of codes.
        totals = codes.aggregate(n=Count("id"), uses=Sum("use_count"))
        count, uses = totals["n"], totals["uses"] or 0
        top = list(codes[:20])
        return format_html(
            '<dl class="at-a-glance">'
            "<dt>Window</dt><dd>{}</dd><dt>Status</dt><dd><strong>{}</strong></dd>"
            "<dt>Discounts</dt><dd>{}</dd>"
            '<dt>Conditions</dt><dd><code class="conditions">{}</code></dd>'
            "<dt>Codes</dt><dd>{} codes, {} uses{} &mdash; "
            '<a href="{}">all codes</a>, '
            '<a href="{}">export as CSV</a>, <a href="{}">import from CSV</a></dd></dl>{}',
            window,
            obj.status,
            format_html_join("", "<div>{}</div>", ((d,) for d in discounts)),
            selectors.conditions_expression(promotion=obj) or "none: every client qualifies",
            count,
            uses,
            " (the 20 most used below)" if count > 20 else "",
            reverse("admin:promotions_promocode_changelist") + f"?promotion__id__exact={obj.pk}",
            reverse("admin:promotions_promotion_export_codes", args=[obj.pk]),
            reverse("admin:promotions_promotion_import_codes", args=[obj.pk]),
            format_html(
                "<table><tr><th>code</th><th>uses</th><th>limit</th><th>per client</th></tr>{}</table>",
                format_html_join(
                    "",
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    (
                        (c.code, c.use_count, c.uselimit or "-", c.account_uselimit or "-")
                        for c in top
                    ),
                ),
            )
            if top
            else "",
        )

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "<int:promotion_id>/codes.csv",
                view(self.export_codes_view),
                name="promotions_promotion_export_codes",
            ),
            path("try-order/", view(self.try_order_view), name="promotions_promotion_try_order"),
            path(
                "<int:promotion_id>/backtest/",
                view(self.backtest_view),
                name="promotions_promotion_backtest",
            ),
            path(
                "<int:promotion_id>/backtest/<int:job_id>/",
                view(self.backtest_result_view),
                name="promotions_promotion_backtest_result",
            ),
            path(
                "<int:promotion_id>/backtest/<int:job_id>/orders.csv",
                view(self.backtest_csv_view),
                name="promotions_promotion_backtest_csv",
            ),
            path(
                "<int:promotion_id>/import-codes/",
                view(self.import_codes_view),
                name="promotions_promotion_import_codes",
            ),
            *super().get_urls(),
        ]

    def _promotion(self, request, promotion_id: int, *, change: bool) -> Promotion:
        """Exporting reads the codes, importing adds codes: each needs its right on codes too."""
        promotion = get_object_or_404(Promotion, pk=promotion_id)
        allowed = (
            self.has_change_permission(request, promotion)
            and request.user.has_perm("promotions.add_promocode")
            if change
            else self.has_view_permission(request, promotion)
            and request.user.has_perm("promotions.view_promocode")
        )
        if not allowed:
            raise PermissionDenied
        return promotion

    def export_codes_view(self, request, promotion_id: int):
        promotion = self._promotion(request, promotion_id, change=False)
        columns = [*services.CSV_COLUMNS, "use_count"]
        return csv_response(
            f"promotion-{promotion.pk}-codes.csv",
            columns,
            promotion.promocodes.order_by("code").values_list(*columns),
            row=lambda values: ["" if v is None else v for v in values],
        )

    def import_codes_view(self, request, promotion_id: int):
        promotion = self._promotion(request, promotion_id, change=True)
        form = ImportCodesForm(request.POST or None, request.FILES or None)
        errors: list[str] = []
        if request.method == "POST" and form.is_valid():
            try:
                rows = form.rows()
                added = services.promocodes_import(
                    promotion=promotion,
                    rows=rows,
                    actor=admin_actor(request, "promotion.promocode.import"),
                )
            except ValidationError as exc:
                errors = exc.messages
            else:
                self.message_user(request, f"{added} promo code(s) imported.")
                return redirect("admin:promotions_promotion_change", promotion.pk)
        return render(
            request,
            "admin/promotions/import_codes.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Import promo codes into {promotion.name}",
                "form": form,
                "errors": errors,
                "promotion": promotion,
                "columns": services.CSV_COLUMNS,
                "opts": self.model._meta,
            },
        )

    def _viewed(self, request, promotion_id: int) -> Promotion:
        promotion = get_object_or_404(Promotion, pk=promotion_id)
        if not self.has_view_permission(request, promotion):
            raise PermissionDenied
        return promotion

    def backtest_view(self, request, promotion_id: int):
        """The window to replay; starting it shows its page, which follows it to its figures."""
        promotion = self._viewed(request, promotion_id)
        yesterday = timezone.localdate() - datetime.timedelta(days=1)
        form = BacktestForm(
            request.POST or None,
            initial={"start": yesterday - datetime.timedelta(days=89), "end": yesterday},
        )
        if request.method == "POST" and form.is_valid():
            try:
                job = backtest_start(
                    promotion=promotion,
                    start=form.cleaned_data["start"],
                    end=form.cleaned_data["end"],
                    actor=admin_actor(request, "promotion.backtest"),
                    back=reverse("admin:promotions_promotion_backtest", args=[promotion.pk]),
                )
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    form.add_error({"from": "start", "to": "end"}.get(field), errors)
            else:
                return redirect("admin:promotions_promotion_backtest_result", promotion.pk, job.pk)
        return render(
            request,
            "admin/promotions/backtest.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Backtest {promotion.name}",
                "promotion": promotion,
                "form": form,
                "earlier": selectors.backtests_of(promotion=promotion),
                "opts": self.model._meta,
            },
        )

    def _backtest(self, request, promotion_id: int, job_id: int) -> tuple[Promotion, Job]:
        promotion = self._viewed(request, promotion_id)
        job = get_object_or_404(Job, pk=job_id, kind=BACKTEST, params__promotion=promotion.pk)
        return promotion, job

    def backtest_result_view(self, request, promotion_id: int, job_id: int):
        promotion, job = self._backtest(request, promotion_id, job_id)
        result = job.result if job.status == Job.Status.DONE else None
        return render(
            request,
            "admin/promotions/backtest_result.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Backtest of {promotion.name}, {job.params['from']} to {job.params['to']}",
                "promotion": promotion,
                "job": job,
                "state": job_status(job),
                "status_url": reverse("admin:common_job_status", args=[job.pk]),
                "result": result,
                "charts": backtest_charts(result) if result else [],
                "opts": self.model._meta,
            },
        )

    def backtest_csv_view(self, request, promotion_id: int, job_id: int):
        promotion, job = self._backtest(request, promotion_id, job_id)
        if job.status != Job.Status.DONE:
            raise Http404("The backtest has not finished.")
        return csv_response(
            f"promotion-{promotion.pk}-backtest-{job.pk}.csv",
            selectors.BACKTEST_CSV_COLUMNS,
            selectors.backtest_rows(run=job.params["run"]),
            row=lambda values: [
                timezone.localtime(v).isoformat()
                if isinstance(v, datetime.datetime)
                else ""
                if v is None
                else v
                for v in values
            ],
        )

    def try_order_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = TryOrderForm(request.POST or None)
        lines = TryLineFormSet(request.POST or None, prefix="lines")
        result, errors, moment = None, [], ""
        if request.method == "POST" and form.is_valid() and lines.is_valid():
            moment = moment_format(form.moment)
            try:
                quote = services.order_quote(
                    order=form.order(lines),
                    actor=admin_actor(request, "promotion.try_order"),
                    explain=True,
                )
            except ValidationError as exc:
                errors = order_messages(exc)
            except Throttled as exc:
                errors = [
                    f"Too many unknown promo codes lately; try again in {exc.retry_after} seconds."
                ]
            else:
                result = selectors.quote_for_people(quote_as_dict(quote))
        return render(
            request,
            "admin/promotions/try_order.html",
            {
                **self.admin_site.each_context(request),
                "title": "Try an order",
                "form": form,
                "lines": lines,
                "result": result,
                "moment": moment,
                "media": self.media + form.media + lines.media,
                "errors": errors,
                "opts": self.model._meta,
            },
        )

    @admin.display(description="redemptions per day")
    def redemptions_chart(self, obj: Promotion) -> str:
        if not obj.pk:
            return "-"
        points = [
            (day.strftime("%m-%d"), n)
            for day, n in selectors.redemptions_per_day(promotion=obj, days=30)
        ]
        if not any(n for _, n in points):
            points = []
        return bar_chart(points, title="Code uses per day, last 30 days")

    @admin.display(description="budget (this period)")
    def budget_burn(self, obj: Promotion) -> str:
        return selectors.budget_burn(promotion=obj) or "-"

    @admin.display(description="budget spent per period")
    def budget_chart(self, obj: Promotion) -> str:
        if not obj.pk or (obj.budget is None and obj.client_budget is None):
            return "-"
        spends = selectors.budget_spends(promotion=obj)
        currency = obj.provider.currency
        budget = f" of {money_shown(obj.budget, currency)}" if obj.budget is not None else ""
        table = format_html(
            "<table><tr><th>period</th><th>spent / budget</th></tr>{}</table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}{}</td></tr>",
                ((period, money_shown(spent, currency), budget) for period, spent in spends),
            ),
        )
        chart = bar_chart(
            [(period, spent) for period, spent in spends],
            title=f"Discount given per budget period ({obj.get_budget_period_display()}){budget}",
            shown=lambda amount: money_shown(amount, currency),
        )
        return format_html("{}{}", chart, table if spends else "")

    @admin.display(description="history")
    def history_table(self, obj: Promotion) -> str:
        if not obj.pk:
            return "-"
        rows = history_of(obj=obj)[:50]
        return format_html(
            "<table><tr><th>date</th><th>change</th><th>user</th><th>IP</th><th>function</th></tr>{}</table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                (
                    (
                        moment_format(h.changedate),
                        h.desc,
                        h.username,
                        h.ip or "",
                        h.action,
                    )
                    for h in rows
                ),
            ),
        )

    @staticmethod
    def create(actor, data):
        return services.promotion_create(actor=actor, **data)

    @staticmethod
    def update(current, actor, data):
        return services.promotion_update(promotion=current, actor=actor, **data)

    def inline_writers(self, request, parent):
        """Inline rows go through the services too, each with its own history line."""
        actor = admin_actor(request, "promotion.change")
        return {
            Discount: (
                lambda data: services.discount_create(promotion=parent, actor=actor, **data),
                lambda obj, data: services.discount_update(discount=obj, actor=actor, **data),
                lambda objs: services.discount_delete_many(discounts=objs, actor=actor),
            ),
            ConditionGroup: (
                lambda data: services.condition_group_create(promotion=parent, actor=actor, **data),
                lambda obj, data: services.condition_group_update(group=obj, actor=actor, **data),
                lambda objs: services.condition_group_delete_many(groups=objs, actor=actor),
            ),
            Condition: (
                lambda data: services.condition_create(
                    promotion=parent, actor=actor, **group_arg(data, parent.groups.all())
                ),
                lambda obj, data: services.condition_update(
                    condition=obj, actor=actor, **group_arg(data, parent.groups.all())
                ),
                lambda objs: services.condition_delete_many(conditions=objs, actor=actor),
            ),
            PromoCode: (
                lambda data: services.promocode_create(promotion=parent, actor=actor, **data),
                lambda obj, data: services.promocode_update(promocode=obj, actor=actor, **data),
                lambda objs: services.promocode_delete_many(promocodes=objs, actor=actor),
            ),
        }

    @admin.action(description="Archive selected promotions", permissions=["change"])
    def archive(self, request, queryset):
        actor = admin_actor(request, "promotion.archive")
        with transaction.atomic():
            for promotion in queryset:
                services.promotion_archive(promotion=promotion, actor=actor)
        self.message_user(request, f"{queryset.count()} promotion(s) archived.")

    @admin.action(description="Restore selected promotions from archive", permissions=["change"])
    def restore(self, request, queryset):
        actor = admin_actor(request, "promotion.restore")
        with transaction.atomic():
            for promotion in queryset:
                services.promotion_restore(promotion=promotion, actor=actor)
        self.message_user(request, f"{queryset.count()} promotion(s) restored.")

    def has_generate_codes_permission(self, request) -> bool:
        """Generating changes promotions by adding codes: it needs both rights, as on every door."""
        return self.has_change_permission(request) and request.user.has_perm(
            "promotions.add_promocode"
        )

    @admin.action(description="Generate promo codes", permissions=["generate_codes"])
    def generate_codes(self, request, queryset):
        form = GenerateCodesForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            actor = admin_actor(request, "promotion.promocode.generate")
            data = form.cleaned_data
            promotions = sorted(queryset, key=lambda p: p.pk)
            code_settings = {
                "uselimit": data["uselimit"],
                "account_uselimit": data["account_uselimit"],
            }
            try:
                with transaction.atomic():
                    if data["count"] * len(promotions) >= background_from():
                        job = generate_codes_start(
                            promotions=promotions,
                            template=data["template"],
                            count=data["count"],
                            onlydigit=data["onlydigit"],
                            actor=actor,
                            code_settings=code_settings,
                            back=reverse(
                                "admin:promotions_promotion_change", args=[promotions[0].pk]
                            ),
                            links=generated_links(promotions),
                        )
                        return redirect("admin:common_job_progress", job.pk)
                    made = sum(
                        services.promocodes_generate(
                            promotion=promotion,
                            actor=actor,
                            template=data["template"],
                            count=data["count"],
                            digits_only=data["onlydigit"],
                            **code_settings,
                        )
                        for promotion in promotions
                    )
            except ValidationError as exc:
                self.message_user(request, "; ".join(exc.messages), level=messages.ERROR)
                return None
            self.message_user(request, f"{made} promo code(s) generated.")
            return None
        return render(
            request,
            "admin/promotions/generate_codes.html",
            {
                **self.admin_site.each_context(request),
                "title": "Generate promo codes",
                "form": form,
                "promotions": queryset,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
                "opts": self.model._meta,
            },
        )


def generated_links(promotions: list[Promotion]) -> list[tuple[str, str]]:
    """Where generated codes are read: each promotion's codes and their CSV export."""
    codes = reverse("admin:promotions_promocode_changelist")
    links = []
    for promotion in promotions:
        name = f" of {promotion.name}" if len(promotions) > 1 else ""
        links += [
            (f"The codes{name}", f"{codes}?promotion__id__exact={promotion.pk}"),
            (
                f"Export the codes{name} as CSV",
                reverse("admin:promotions_promotion_export_codes", args=[promotion.pk]),
            ),
        ]
    return links


class PromoCodeForm(forms.ModelForm):
    def clean_code(self):
        code = self.cleaned_data["code"]
        if codegen.is_template(code):
            raise ValidationError(
                'One code per page: use the "Generate promo codes" action for templates.'
            )
        return code


@admin.register(PromoCode)
class PromoCodeAdmin(ServiceSavedAdmin):
    list_display = [
        "id",
        "code",
        "promotion",
        "use_count",
        "uselimit",
        "left",
        "account_uselimit",
        "active_time_type",
    ]
    list_select_related = ["promotion"]
    list_filter = ["promotion", "active_time_type", "expiretype"]
    search_fields = ["code"]
    readonly_fields = ["use_count"]
    raw_id_fields = ["promotion"]
    form = PromoCodeForm

    @admin.display(description="uses left")
    def left(self, obj: PromoCode) -> str:
        if obj.uselimit is None:
            return "no limit"
        return f"{obj.uselimit - obj.use_count} of {obj.uselimit}"

    @staticmethod
    def create(actor, data):
        return services.promocode_create(actor=actor, **data)

    @staticmethod
    def update(current, actor, data):
        return services.promocode_update(promocode=current, actor=actor, **data)

    def delete_model(self, request, obj):
        services.promocode_delete_many(
            promocodes=[obj], actor=admin_actor(request, "promocode.delete")
        )


@admin.register(PromoCodeUsage)
class PromoCodeUsageAdmin(admin.ModelAdmin):
    """Code uses are history: shown, never added, changed or deleted here (a use is undone by
    releasing its redemption, which keeps the row and frees the use)."""

    list_display = ["id", "promocode", "client", "service", "status", "charged", "created_at"]
    list_filter = ["status"]
    search_fields = ["promocode__code", "client__name"]
    raw_id_fields = ["promocode", "client", "service", "redemption"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("promocode", "client", "redemption")

    @admin.display(description="charged on the discounted lines")
    def charged(self, obj: PromoCodeUsage) -> str:
        return selectors.usage_charge(obj)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
