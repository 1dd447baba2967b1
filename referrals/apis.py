"""REST doors of referrals: attach a referred client by partner code or by link, record link
clicks, read the reward ledger, pay partners in batches, fetch a batch's payout file and mark its
payouts sent or failed."""

import django_filters
from django.db.models import Prefetch, QuerySet
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.text import slugify
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.models import Client
from common.admin_tools import csv_response
from common.apis import (
    Conflict,
    HasPerm,
    ModelPermissionsWithView,
    Pagination,
    api_actor,
    service_call,
)
from referrals import selectors, services
from referrals.models import (
    LinkClick,
    Payout,
    PayoutBatch,
    Referral,
    ReferralProgram,
    Reward,
    RewardState,
    partner_link,
)


class ReferralOutput(serializers.ModelSerializer):
    class Meta:
        model = Referral
        fields = ["id", "program", "partner", "client", "source", "via", "joined_at", "address"]


class ReferralAttachApi(APIView):
    required_perm = "referrals.add_referral"
    permission_classes = [HasPerm]

    class AttachInput(serializers.Serializer):
        client = serializers.IntegerField(min_value=1)
        code = serializers.CharField(max_length=100, required=False)
        partner = serializers.IntegerField(min_value=1, required=False)
        program = serializers.IntegerField(min_value=1, required=False)
        source = serializers.ChoiceField(
            choices=[Referral.Source.LINK, Referral.Source.MANUAL],
            required=False,
            default=Referral.Source.LINK,
            help_text="With `partner` and `program`: `link` (they followed the partner's link) "
            "or `manual` (attached by hand).",
        )
        visitor = serializers.CharField(max_length=64, required=False)
        address = serializers.IPAddressField(
            required=False,
            help_text="With `partner` and `program`: the visitor's address (the fraud screen "
            "counts a link's attachments per address and day).",
        )

        def validate(self, data):
            ways = ["code" in data, {"partner", "program"} <= data.keys(), "visitor" in data]
            if sum(ways) != 1:
                raise ValidationError(
                    "Send one of: `code`; `partner` and `program` for a link; `visitor` for the "
                    "link click recorded before registration."
                )
            return data

    @extend_schema(
        request=AttachInput,
        responses={201: ReferralOutput, 409: Conflict},
        operation_id="referral_attach",
    )
    def post(self, request):
        data = self.AttachInput(data=request.data)
        data.is_valid(raise_exception=True)
        data = data.validated_data
        client = get_object_or_404(Client, pk=data["client"])
        actor = api_actor(request, "api.referral_attach")
        try:
            if "code" in data:
                referral = services.referral_attach_by_code(
                    client=client, code=data["code"], actor=actor
                )
            elif "visitor" in data:
                referral = services.referral_attach_by_click(
                    client=client, visitor=data["visitor"], actor=actor
                )
            else:
                program = get_object_or_404(ReferralProgram, pk=data["program"])
                by_link = data["source"] == Referral.Source.LINK
                referral = services.referral_attach(
                    client=client,
                    partner_id=data["partner"],
                    program=program,
                    source=data["source"],
                    actor=actor,
                    via=partner_link(program, data["partner"]) if by_link else "",
                    address=data.get("address"),
                )
        except services.AttachRefused as exc:
            return Response({"detail": exc.reason}, status=status.HTTP_409_CONFLICT)
        return Response(ReferralOutput(referral).data, status=status.HTTP_201_CREATED)


class LinkClickCreateApi(APIView):
    """Record that a visitor followed a partner's link (`url?from=PARTNER`), before registering."""

    required_perm = "referrals.add_linkclick"
    permission_classes = [HasPerm]

    class ClickInput(serializers.Serializer):
        program = serializers.IntegerField(min_value=1)
        partner = serializers.IntegerField(min_value=1)
        visitor = serializers.CharField(max_length=64)
        address = serializers.IPAddressField(
            required=False, help_text="The visitor's address, kept for the fraud screens."
        )

    class ClickOutput(serializers.ModelSerializer):
        link = serializers.SerializerMethodField()

        class Meta:
            model = LinkClick
            fields = ["id", "program", "partner", "visitor", "clicked_at", "address", "link"]

        def get_link(self, click: LinkClick) -> str:
            return partner_link(click.program, click.partner_id)

    @extend_schema(request=ClickInput, responses={201: ClickOutput}, operation_id="link_click")
    def post(self, request):
        data = self.ClickInput(data=request.data)
        data.is_valid(raise_exception=True)
        data = data.validated_data
        program = get_object_or_404(ReferralProgram, pk=data["program"])
        click = service_call(
            lambda: services.link_click_record(
                program=program,
                partner_id=data["partner"],
                visitor=data["visitor"],
                address=data.get("address"),
            )
        )
        return Response(self.ClickOutput(click).data, status=status.HTTP_201_CREATED)


# The ledger, read-only --------------------------------------------------------------------------


class RewardFilter(django_filters.FilterSet):
    """Filters of GET /api/v1/rewards. The selector reads the ledger (a partner's rows through
    their referrals' expenses, the states at this moment), so `qs` hands the whole of it over."""

    program = django_filters.ModelChoiceFilter(
        field_name="rule__program", queryset=ReferralProgram.objects.all()
    )
    partner = django_filters.ModelChoiceFilter(
        field_name="beneficiary", queryset=Client.objects.all(), help_text="The credited client."
    )
    state = django_filters.MultipleChoiceFilter(
        choices=RewardState.choices, help_text="One or more: state=held&state=payable."
    )
    date = django_filters.DateFilter(help_text="Accrued on this day.")
    date_after = django_filters.DateFilter(help_text="Accrued on or after this day.")
    date_before = django_filters.DateFilter(help_text="Accrued on or before this day.")

    class Meta:
        model = Reward
        fields = ["program", "partner", "state", "date", "date_after", "date_before"]

    @property
    def qs(self):
        data = self.form.cleaned_data
        since = [d for d in (data.get("date"), data.get("date_after")) if d]
        until = [d for d in (data.get("date"), data.get("date_before")) if d]
        return selectors.ledger(
            program=data.get("program"),
            partner=data.get("partner"),
            states=data.get("state") or (),
            since=max(since) if since else None,
            until=min(until) if until else None,
        )


class RewardListApi(generics.ListAPIView):
    """The reward ledger: every row with its state; a reversing row (a refund giving a reward
    back) is its own row with a negative amount and `reverses` = the reward it reverses."""

    class RewardOutput(serializers.ModelSerializer):
        program = serializers.IntegerField(source="rule.program_id")
        partner = serializers.IntegerField(
            source="beneficiary_id", help_text="The credited client."
        )
        currency = serializers.CharField(source="currency.iso")
        state = serializers.ChoiceField(choices=RewardState.choices)

        class Meta:
            model = Reward
            fields = [
                "id",
                "program",
                "rule",
                "partner",
                "role",
                "referral",
                "expense",
                "amount",
                "currency",
                "kind",
                "state",
                "reverses",
                "payout",
                "payable_at",
                "created_at",
            ]

    queryset = Reward.objects.all()
    serializer_class = RewardOutput
    permission_classes = [ModelPermissionsWithView]
    filter_backends = [DjangoFilterBackend]
    filterset_class = RewardFilter
    pagination_class = Pagination


# Payout batches ---------------------------------------------------------------------------------


class MoneyOutput(serializers.Serializer):
    amount = serializers.DecimalField(max_digits=20, decimal_places=4)
    currency = serializers.CharField()


class PayoutOutput(serializers.ModelSerializer):
    currency = serializers.CharField(source="currency.iso")
    payout_details = serializers.SerializerMethodField(help_text="Masked.")

    class Meta:
        model = Payout
        fields = [
            "id",
            "program",
            "partner",
            "amount",
            "currency",
            "status",
            "rewards_count",
            "payout_details",
            "created_at",
            "paid_by",
        ]

    def get_payout_details(self, payout: Payout) -> str:
        return selectors.masked(payout.payout_details)


class BatchOutput(serializers.ModelSerializer):
    payouts = PayoutOutput(many=True, read_only=True)
    file = serializers.SerializerMethodField(help_text="Where the payout file (CSV) is.")

    class Meta:
        model = PayoutBatch
        fields = ["id", "reference", "created_at", "created_by", "payouts", "file"]

    def get_file(self, batch: PayoutBatch) -> str:
        return reverse("payout-batch-file", args=[batch.pk])


class SkipOutput(serializers.Serializer):
    program = serializers.IntegerField(source="program.pk")
    partner = serializers.IntegerField(source="partner.pk")
    balance = MoneyOutput()
    reason = serializers.CharField()


class PaymentOutput(serializers.Serializer):
    batch = BatchOutput(allow_null=True)
    skipped = SkipOutput(many=True)
    detail = serializers.CharField(
        required=False, help_text="With a 409 (nothing was paid): why, in words."
    )


def _named(choices: QuerySet, ids: list[int], field: str, refusal: str) -> list:
    """The rows of `choices` with these ids; a 400 on `field` naming the ids that are not among
    them, so a typo is never paid or marked as if it were not there."""
    found = list(choices.filter(pk__in=ids))
    unknown = set(ids) - {row.pk for row in found}
    if unknown:
        raise ValidationError({field: [f"{refusal}: {sorted(unknown)}"]})
    return found


class PayPermission(ModelPermissionsWithView):
    """Reading batches needs view_payoutbatch; paying needs the right to pay."""

    perms_map = {**ModelPermissionsWithView.perms_map, "POST": ["referrals.add_payout"]}


class PayoutBatchListCreateApi(generics.ListAPIView):
    """GET: the payout batches, newest first. POST: pay the partners of a program (all with a
    payable balance, or those named) in one new batch under `reference`."""

    queryset = PayoutBatch.objects.prefetch_related(
        Prefetch("payouts", queryset=Payout.objects.select_related("currency").order_by("pk"))
    ).order_by("-pk")
    serializer_class = BatchOutput
    permission_classes = [PayPermission]
    pagination_class = Pagination

    class PayInput(serializers.Serializer):
        program = serializers.IntegerField(min_value=1)
        partners = serializers.ListField(
            child=serializers.IntegerField(min_value=1),
            required=False,
            max_length=10_000,
            help_text="Partner ids; every partner of the program when left out.",
        )
        reference = serializers.CharField(max_length=100)

    @extend_schema(
        request=PayInput,
        responses={201: PaymentOutput, 409: PaymentOutput},
        operation_id="payout_batch_create",
    )
    def post(self, request):
        data = self.PayInput(data=request.data)
        data.is_valid(raise_exception=True)
        data = data.validated_data
        program = get_object_or_404(ReferralProgram, pk=data["program"])
        partners = selectors.partners(program)
        if "partners" in data:
            partners = _named(
                partners, data["partners"], "partners", "Not partners of this program"
            )
        made = service_call(
            lambda: services.payouts_create_many(
                partners=[(program, p) for p in partners],
                reference=data["reference"],
                actor=api_actor(request, "api.payout_batch_create"),
            )
        )
        if made.batch is not None:
            answer = {"batch": PayoutBatch.objects.get(pk=made.batch.pk), "skipped": made.skipped}
            return Response(PaymentOutput(answer).data, status=status.HTTP_201_CREATED)
        why = "; ".join(str(skip) for skip in made.skipped) or (
            "no partner has a payable balance (every reward has been paid already, or is still "
            "held)"
        )
        answer = {"batch": None, "skipped": made.skipped, "detail": f"Nothing was paid: {why}."}
        return Response(PaymentOutput(answer).data, status=status.HTTP_409_CONFLICT)


class PayoutBatchFileApi(APIView):
    """The batch's payout file for a bank's or payment provider's bulk upload: one CSV line per
    payout that has not failed (reference, payout, partner, payout details unmasked, amount,
    currency, program, status), cells a spreadsheet would run neutralised. It carries the
    partners' payout details, so it needs the right to pay (referrals.add_payout)."""

    required_perm = "referrals.add_payout"
    permission_classes = [HasPerm]

    @extend_schema(
        responses={(200, "text/csv"): OpenApiTypes.STR}, operation_id="payout_batch_file"
    )
    def get(self, request, batch_id: int):
        batch = get_object_or_404(PayoutBatch, pk=batch_id)
        return csv_response(
            f"{slugify(batch.reference) or 'payouts'}.csv",
            selectors.PAYOUT_FILE_HEADER,
            selectors.payout_file_rows(batch),
        )


class PayoutBatchStatusApi(APIView):
    """Mark a batch's payouts (all of them, or those named) `sent` or `failed`; a failed payout's
    rewards are payable again."""

    required_perm = "referrals.change_payout"
    permission_classes = [HasPerm]

    class StatusInput(serializers.Serializer):
        status = serializers.ChoiceField(choices=[Payout.Status.SENT, Payout.Status.FAILED])
        payouts = serializers.ListField(
            child=serializers.IntegerField(min_value=1),
            required=False,
            max_length=10_000,
            help_text="Payout ids of the batch; every payout that can move when left out.",
        )

    @extend_schema(
        request=StatusInput, responses={200: BatchOutput}, operation_id="payout_batch_status"
    )
    def post(self, request, batch_id: int):
        batch = get_object_or_404(PayoutBatch, pk=batch_id)
        data = self.StatusInput(data=request.data)
        data.is_valid(raise_exception=True)
        data = data.validated_data
        actor = api_actor(request, f"api.payout_{data['status']}")
        if "payouts" in data:
            named = _named(
                batch.payouts.all(), data["payouts"], "payouts", "Not payouts of this batch"
            )
            service_call(
                lambda: services.payouts_mark_many(
                    payouts=named, status=data["status"], actor=actor
                )
            )
        else:
            service_call(
                lambda: services.payout_batch_mark(batch=batch, status=data["status"], actor=actor)
            )
        return Response(BatchOutput(PayoutBatch.objects.get(pk=batch.pk)).data)
