"""The engine's REST door: quote, redeem, release, and read-only lists. Views only translate."""

from django.shortcuts import get_object_or_404
from django.utils import timezone
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from common.apis import (
    Conflict,
    HasPerm,
    ModelPermissionsWithView,
    MomentField,
    api_actor,
    service_call,
)
from promotions import services
from promotions.engine import Kind, Line, Order
from promotions.engine.present import quote_as_dict
from promotions.filters import PromoCodeFilter, PromotionFilter
from promotions.models import PromoCode, Promotion, Redemption
from promotions.selectors import redemption_as_dict


class OrderInput(serializers.Serializer):
    class LineInput(serializers.Serializer):
        tariff = serializers.IntegerField(min_value=1)
        period = serializers.IntegerField(min_value=1, max_value=1200)
        price = serializers.DecimalField(max_digits=20, decimal_places=4, min_value=0)
        currency = serializers.CharField(max_length=32)
        kind = serializers.ChoiceField(choices=Kind.CHOICES, default=Kind.NEW)
        service = serializers.IntegerField(min_value=1, required=False, allow_null=True)

    client = serializers.IntegerField(min_value=1)
    provider = serializers.IntegerField(min_value=1)
    at = MomentField(required=False, allow_null=True)
    codes = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, default=list, max_length=20
    )
    lines = LineInput(many=True, allow_empty=False, max_length=500)

    def to_order(self) -> Order:
        data = self.validated_data
        return Order(
            client_id=data["client"],
            provider_id=data["provider"],
            at=data.get("at") or timezone.now(),
            codes=tuple(data["codes"]),
            lines=tuple(
                Line(
                    tariff_id=ln["tariff"],
                    period=ln["period"],
                    price=ln["price"],
                    currency=ln["currency"].upper(),
                    kind=ln["kind"],
                    service_id=ln.get("service"),
                )
                for ln in data["lines"]
            ),
        )


def _order_from(request) -> Order:
    serializer = OrderInput(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.to_order()


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
        promotion = serializers.IntegerField(allow_null=True)
        code = serializers.CharField(allow_null=True)
        verdicts = VerdictOutput(many=True)

    class CodeOutput(serializers.Serializer):
        code = serializers.CharField()
        valid = serializers.BooleanField()
        promotion = serializers.IntegerField(allow_null=True)
        reason = serializers.CharField()

    lines = LineOutput(many=True)
    codes = CodeOutput(many=True)
    total = serializers.CharField()
    discount_total = serializers.CharField()


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


class QuoteApi(APIView):
    required_perm = "promotions.view_promotion"
    permission_classes = [HasPerm]

    @extend_schema(request=OrderInput, responses={200: QuoteOutput}, operation_id="quote_create")
    def post(self, request):
        order = _order_from(request)
        quote = service_call(
            lambda: services.order_quote(order=order, actor=api_actor(request, "api.quote"))
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
        key = request.headers.get("Idempotency-Key", "").strip()
        if not key or len(key) > 255:
            raise ValidationError(
                {"Idempotency-Key": ["Send an Idempotency-Key header (1-255 characters)."]}
            )
        order = _order_from(request)
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


class Pagination(LimitOffsetPagination):
    default_limit = 100
    max_limit = 1000


class PromotionListApi(generics.ListAPIView):
    class PromotionOutput(serializers.ModelSerializer):
        status = serializers.CharField()

        class Meta:
            model = Promotion
            fields = ["id", "name", "provider", "fromdate", "todate", "archived", "status"]

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
            fields = [
                "id",
                "promotion",
                "code",
                "uselimit",
                "account_uselimit",
                "use_count",
                "active_time_type",
                "fromdate",
                "todate",
                "expiretype",
                "periodtype",
                "periodlength",
            ]

    queryset = PromoCode.objects.order_by("id")
    serializer_class = PromoCodeOutput
    permission_classes = [ModelPermissionsWithView]
    filter_backends = [DjangoFilterBackend]
    filterset_class = PromoCodeFilter
    pagination_class = Pagination
