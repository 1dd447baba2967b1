"""The engine's REST door: quote, redeem, release, and read-only lists. Views only translate."""

from django.shortcuts import get_object_or_404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from common.apis import (
    Conflict,
    HasPerm,
    ModelPermissionsWithView,
    MomentField,
    Pagination,
    api_actor,
    service_call,
    validated,
)
from promotions import services
from promotions.engine import Kind, Order
from promotions.engine.present import quote_as_dict
from promotions.filters import PromoCodeFilter, PromotionFilter
from promotions.jobs import backtest_start
from promotions.models import PromoCode, Promotion, Redemption
from promotions.selectors import redemption_as_dict
from promotions.services.orders import (
    MAX_CODES_PER_ORDER,
    MAX_LINES_PER_ORDER,
    PRICE_DECIMAL_PLACES,
    PRICE_MAX_DIGITS,
)


class OrderInput(serializers.Serializer):
    """The order in JSON. Only types are checked here; the order's rules (at least one line, at
    most 500 lines and 10 codes, periods of 1-1200 months, prices of zero or more, the kinds, how
    a code is spelled) are the promotions services' and answer 400 naming the field."""

    class LineInput(serializers.Serializer):
        tariff = serializers.IntegerField()
        period = serializers.IntegerField(default=1, help_text="Months, 1 to 1200.")
        price = serializers.DecimalField(
            max_digits=PRICE_MAX_DIGITS, decimal_places=PRICE_DECIMAL_PLACES
        )
        currency = serializers.CharField()
        kind = serializers.CharField(default=Kind.NEW, help_text="`new` or `renewal`.")
        service = serializers.IntegerField(
            required=False,
            allow_null=True,
            help_text="The renewed service: renewal discounts valid N months from the order "
            "need it.",
        )

    client = serializers.IntegerField()
    provider = serializers.IntegerField()
    at = MomentField(required=False, allow_null=True)
    codes = serializers.ListField(
        child=serializers.CharField(allow_blank=True),
        required=False,
        default=list,
        help_text=f"At most {MAX_CODES_PER_ORDER} promo codes, in any case.",
    )
    lines = LineInput(many=True, help_text=f"1 to {MAX_LINES_PER_ORDER} lines.")


def _order_of(data: dict) -> Order:
    """The order an OrderInput's validated data names, built (and its rules checked) by the
    services."""
    return service_call(
        lambda: services.order_build(
            client=data["client"],
            provider=data["provider"],
            at=data.get("at"),
            codes=data["codes"],
            lines=data["lines"],
        )
    )


class QuoteOutput(serializers.Serializer):
    class LineOutput(serializers.Serializer):
        class VerdictOutput(serializers.Serializer):
            promotion = serializers.IntegerField()
            applied = serializers.BooleanField()
            reason = serializers.CharField()

        tariff = serializers.IntegerField()
        period = serializers.IntegerField()
        kind = serializers.CharField()
        currency = serializers.CharField()
        price = serializers.CharField()
        discount = serializers.CharField()
        final_price = serializers.CharField()

        class AppliedOutput(serializers.Serializer):
            promotion = serializers.IntegerField()
            code = serializers.CharField(allow_null=True)
            discount = serializers.CharField()

        promotion = serializers.IntegerField(
            allow_null=True, help_text="The promotion that applied first."
        )
        code = serializers.CharField(allow_null=True)
        applied = AppliedOutput(
            many=True,
            help_text="Each promotion's part of the discount: the first, then the combinable "
            "ones stacked on the price it left.",
        )
        verdicts = VerdictOutput(
            many=True,
            help_text="Why each promotion did or did not discount the line: all of them with "
            "`explain`, else the winner, the runner-up, the near misses and the codes' promotions.",
        )

    class CodeOutput(serializers.Serializer):
        code = serializers.CharField()
        valid = serializers.BooleanField()
        promotion = serializers.IntegerField(allow_null=True)
        reason = serializers.CharField()

    class BudgetOutput(serializers.Serializer):
        promotion = serializers.IntegerField()
        period = serializers.CharField(
            help_text='"total", a day "2026-11-29" or a month "2026-11".'
        )
        needs = serializers.CharField(help_text="What this order takes from the budget.")
        left = serializers.CharField(allow_null=True, help_text="Left in the period; null: none.")
        client_left = serializers.CharField(allow_null=True)

    lines = LineOutput(many=True)
    codes = CodeOutput(many=True)
    budgets = BudgetOutput(
        many=True,
        help_text="The budgeted promotions the order uses: what is left (a quote reserves "
        "nothing; a redemption reserves what it needs).",
    )
    total = serializers.CharField()
    discount_total = serializers.CharField()
    explained = serializers.BooleanField(
        help_text="Whether each line's verdicts cover every live promotion (`explain`)."
    )


class RedemptionOutput(QuoteOutput):
    class UsageOutput(serializers.Serializer):
        id = serializers.IntegerField()
        code = serializers.CharField()
        promotion = serializers.IntegerField()
        status = serializers.CharField()

    id = serializers.IntegerField()
    status = serializers.CharField()
    idempotency_key = serializers.CharField()
    usages = UsageOutput(many=True)


class QuoteInput(OrderInput):
    explain = serializers.BooleanField(
        default=False,
        help_text="Every live promotion's verdict on every line. Without it a line's verdicts are "
        "the winner's, the runner-up's, the near misses' (promotions ranked above the winner that "
        "missed a condition or a code) and those of the promotions of the codes named.",
    )


class QuoteApi(APIView):
    required_perm = "promotions.view_promotion"
    permission_classes = [HasPerm]

    @extend_schema(
        request=QuoteInput,
        responses={200: QuoteOutput},
        operation_id="quote_create",
        description="What the order costs: each line's discount and the promotion that gives it, "
        "and why others do not. Reads only. The verdicts are complete with `explain: true`.",
    )
    def post(self, request):
        data = validated(QuoteInput, request.data)
        order = _order_of(data)
        quote = service_call(
            lambda: services.order_quote(
                order=order, actor=api_actor(request, "api.quote"), explain=data["explain"]
            )
        )
        return Response(quote_as_dict(quote))


class RedemptionCreateApi(APIView):
    required_perm = "promotions.add_redemption"
    permission_classes = [HasPerm]

    @extend_schema(
        request=OrderInput,
        parameters=[
            OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=True)
        ],
        responses={201: RedemptionOutput, 200: RedemptionOutput, 409: Conflict},
        operation_id="redemption_create",
    )
    def post(self, request):
        key = service_call(
            lambda: services.idempotency_key_clean(request.headers.get("Idempotency-Key")),
            field_names={"idempotency_key": "Idempotency-Key"},
        )
        order = _order_of(validated(OrderInput, request.data))
        try:
            redemption, created = service_call(
                lambda: services.redemption_redeem(
                    order=order, idempotency_key=key, actor=api_actor(request, "api.redeem")
                )
            )
        except services.RedemptionRefused as exc:
            return Response({"detail": exc.reason}, status=status.HTTP_409_CONFLICT)
        return Response(
            redemption_as_dict(redemption=redemption),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class RedemptionReleaseApi(APIView):
    required_perm = "promotions.change_redemption"
    permission_classes = [HasPerm]

    @extend_schema(
        request=None, responses={200: RedemptionOutput}, operation_id="redemption_release"
    )
    def post(self, request, redemption_id: int):
        redemption = get_object_or_404(Redemption, pk=redemption_id)
        redemption = services.redemption_release(
            redemption=redemption, actor=api_actor(request, "api.release")
        )
        return Response(redemption_as_dict(redemption=redemption))


class PromotionListApi(generics.ListAPIView):
    class PromotionOutput(serializers.ModelSerializer):
        status = serializers.CharField()

        class Meta:
            model = Promotion
            fields = [
                "id",
                "name",
                "provider",
                "fromdate",
                "todate",
                "archived",
                "status",
                "priority",
                "combine",
                "budget",
                "budget_period",
                "client_budget",
            ]

    queryset = Promotion.objects.order_by("id")
    serializer_class = PromotionOutput
    permission_classes = [ModelPermissionsWithView]
    filter_backends = [DjangoFilterBackend]
    filterset_class = PromotionFilter
    pagination_class = Pagination


class PromoCodeListApi(generics.ListAPIView):
    class PromoCodeOutput(serializers.ModelSerializer):
        class Meta:
            model = PromoCode
            fields = ["id", "promotion", "code", "use_count", *PromoCode.SETTINGS]

    queryset = PromoCode.objects.order_by("id")
    serializer_class = PromoCodeOutput
    permission_classes = [ModelPermissionsWithView]
    filter_backends = [DjangoFilterBackend]
    filterset_class = PromoCodeFilter
    pagination_class = Pagination


class BacktestInput(serializers.Serializer):
    locals()["from"] = serializers.DateField(help_text="The window's first day, YYYY-MM-DD.")
    to = serializers.DateField(help_text="The window's last day (included), YYYY-MM-DD.")


class JobStarted(serializers.Serializer):
    job = serializers.IntegerField(help_text="Follow it at /api/v1/jobs/{job}.")
    status = serializers.CharField()


class PromotionBacktestApi(APIView):
    required_perm = "promotions.view_promotion"
    permission_classes = [HasPerm]

    @extend_schema(
        request=BacktestInput,
        responses={202: JobStarted},
        operation_id="promotion_backtest",
        description="Replays the provider's past orders in the window through the engine with "
        "this promotion added to those live then (also a draft or an archived one), in the "
        "background: follow the job at /api/v1/jobs/{job}; its result holds the figures.",
    )
    def post(self, request, promotion_id: int):
        promotion = get_object_or_404(Promotion, pk=promotion_id)
        serializer = BacktestInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        window = serializer.validated_data
        job = service_call(
            lambda: backtest_start(
                promotion=promotion,
                start=window["from"],
                end=window["to"],
                actor=api_actor(request, "api.backtest"),
            )
        )
        return Response({"job": job.pk, "status": job.status}, status=status.HTTP_202_ACCEPTED)
