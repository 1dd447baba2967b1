"""The DigiPay door: /digipay/v3/reward_promotion/referral_program. Views only translate."""

import datetime

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from common.parsers import SafeJSONParser
from digipay_api import conditions, envelope, mapping, selectors, services
from digipay_api.auth import (
    HEADER_PARAMETERS,
    CompanyTokenAuthentication,
    IsTheTokensCompany,
    actor_of,
    company_of,
)
from digipay_api.envelope import BadRequest, DigiPayError
from digipay_api.models import DigiPayProgram

SAVED = "Referral Program saved successfully."
UPDATED = "Referral Program updated successfully."
DELETED = "Referral Program deleted successfully."

TAG = "DigiPay"


class JsonOnly(BaseContentNegotiation):
    """DigiPay bodies are JSON whatever Content-Type says; answers are JSON whatever Accept says."""

    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class DigiPayApi(APIView):
    authentication_classes = [CompanyTokenAuthentication]
    permission_classes = [IsTheTokensCompany]
    parser_classes = [SafeJSONParser]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = JsonOnly
    metadata_class = None  # OPTIONS answers 405 like any method the route lacks

    def get_exception_handler(self):
        return envelope.exception_handler

    def program(self, referral_program_id: str) -> DigiPayProgram:
        dp = selectors.program_find(company=company_of(self.request), public_id=referral_program_id)
        if dp is None:
            raise NotFound(f"There is no referral program {referral_program_id}.")
        return dp


def _errors(exc: DjangoValidationError) -> BadRequest:
    """A service's ValidationError, named by DigiPay's fields, with code 7 for a taken title."""
    if not hasattr(exc, "error_dict"):
        return BadRequest({"non_field_errors": exc.messages})
    errors: dict[str, list[str]] = {}
    codes = []
    for name, items in exc.error_dict.items():
        errors.setdefault(mapping.digipay_field(name), []).extend(
            message for item in items for message in item.messages
        )
        if name == "name" and any(item.code == "unique" for item in items):
            codes.append(envelope.TITLE_TAKEN)
    return BadRequest(errors, codes)


def _call(fn):
    try:
        return fn()
    except DjangoValidationError as exc:
        raise _errors(exc) from None


def _responses(ok_serializer, *statuses: int) -> dict:
    return {200: ok_serializer, **dict.fromkeys((*statuses, 401, 403, 500), DigiPayError)}


class ProgramInput(serializers.Serializer):
    referral_program_title = serializers.CharField(
        max_length=200, help_text="Unique in the company."
    )
    referfrom_rewards_type = serializers.ChoiceField(
        choices=mapping.REWARD_TYPE_CHOICES, help_text="The referrer's reward: 1 cash, 3 points."
    )
    referto_rewards_type = serializers.ChoiceField(
        choices=mapping.REWARD_TYPE_CHOICES,
        help_text="The referred user's reward: 1 cash, 3 points.",
    )
    referral_for = serializers.ChoiceField(
        choices=mapping.REFERRAL_FOR_CHOICES,
        help_text="Who takes part: 1 customer, 2 agent, 3 merchant.",
    )
    expiry_date = serializers.IntegerField(
        min_value=0,
        max_value=mapping.MAX_TIMESTAMP,
        required=False,
        allow_null=True,
        help_text="Unix seconds of the last day (included). 0 or null: never expires. A day "
        "before the program's start (e.g. 1) is its start day: it runs that day only.",
    )
    min_referrals = serializers.IntegerField(
        min_value=0,
        max_value=conditions.MAX_COUNT,
        required=False,
        allow_null=True,
        help_text="Referrals a partner brings before any of them earns a reward.",
    )
    max_referral = serializers.IntegerField(
        min_value=0,
        max_value=conditions.MAX_COUNT,
        required=False,
        allow_null=True,
        help_text="The most referrals a partner may bring.",
    )
    referral_reward_users = serializers.ChoiceField(
        choices=mapping.REWARD_USERS_CHOICES,
        help_text="Who is rewarded: 1 the referrer (from user), 2 the referred (to user), 3 both.",
    )
    referral_condition = serializers.ListField(
        child=serializers.CharField(max_length=200),
        max_length=20,
        required=False,
        allow_null=True,
        help_text="Clauses such as refer>=3, transaction>=100, refer_type:either, reward:10%, "
        "period:month (see the README). Empty: no rule, nothing is earned.",
    )
    message = serializers.CharField(
        max_length=2000, required=False, allow_blank=True, allow_null=True
    )
    currency_id = serializers.CharField(
        max_length=32,
        required=False,
        allow_blank=True,
        allow_null=True,
        help_text="The company's 32-hex id of a currency.",
    )
    status = serializers.ChoiceField(
        choices=mapping.WRITABLE_STATUS_CHOICES, required=False, help_text="1 active, 2 inactive."
    )

    def validate_currency_id(self, value):
        """The billing currency the company's id names (None for none)."""
        if not value:
            return None
        found = selectors.company_currency_find(company=self.context["company"], public_id=value)
        if found is None:
            raise serializers.ValidationError(f"The company has no currency {value}.")
        return found.currency

    def validate_referral_condition(self, value):
        """The parsed condition (None for none)."""
        try:
            return conditions.parse(value or [])
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None


class ProgramUpdateInput(ProgramInput):
    """PUT changes the fields it sends and keeps the others."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False


class ProgramOutput(serializers.Serializer):
    referral_program_id = serializers.CharField()
    referral_program_title = serializers.CharField()
    referfrom_rewards_type = serializers.ChoiceField(choices=mapping.REWARD_TYPE_CHOICES)
    referto_rewards_type = serializers.ChoiceField(choices=mapping.REWARD_TYPE_CHOICES)
    referral_for = serializers.ChoiceField(choices=mapping.REFERRAL_FOR_CHOICES, allow_null=True)
    expiry_date = serializers.IntegerField(allow_null=True)
    min_referrals = serializers.IntegerField(allow_null=True)
    max_referral = serializers.IntegerField(allow_null=True)
    referral_reward_users = serializers.ChoiceField(choices=mapping.REWARD_USERS_CHOICES)
    referral_condition = serializers.ListField(child=serializers.CharField())
    message = serializers.CharField(allow_blank=True)
    currency_id = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(
        choices=mapping.STATUS_CHOICES,
        help_text="1 active, 2 inactive, 3 expired.",
    )
    is_active = serializers.ChoiceField(
        choices=mapping.FLAG_CHOICES, help_text="1 when the status is 1."
    )
    start_date = serializers.IntegerField(help_text="Unix seconds of the first day.")
    created_at = serializers.IntegerField(help_text="Unix seconds.")


class SavedData(serializers.Serializer):
    message = serializers.CharField()
    referral_program_id = serializers.CharField()


class DigiPaySaved(serializers.Serializer):
    success = serializers.ChoiceField(choices=mapping.SUCCESS_CHOICES)
    error = serializers.ListField(child=serializers.IntegerField(), max_length=0)
    data = SavedData()


class DetailData(serializers.Serializer):
    referral_program = ProgramOutput()


class DigiPayProgramDetail(serializers.Serializer):
    success = serializers.ChoiceField(choices=mapping.SUCCESS_CHOICES)
    error = serializers.ListField(child=serializers.IntegerField(), max_length=0)
    data = DetailData()


class ListData(serializers.Serializer):
    referral_programs = ProgramOutput(many=True)
    total_count = serializers.IntegerField(help_text="Programs that pass the filters, all pages.")
    skip = serializers.IntegerField()
    limit = serializers.IntegerField()


class DigiPayProgramList(serializers.Serializer):
    success = serializers.ChoiceField(choices=mapping.SUCCESS_CHOICES)
    error = serializers.ListField(child=serializers.IntegerField(), max_length=0)
    data = ListData()


class DayField(serializers.CharField):
    """A day as YYYY-MM-DD or as unix seconds."""

    def to_internal_value(self, data) -> datetime.date:
        text = super().to_internal_value(data)
        if text.isascii() and text.isdigit():
            if int(text) > mapping.MAX_TIMESTAMP:
                self.fail("invalid")
            return mapping.day_at(int(text))
        try:
            return datetime.date.fromisoformat(text)
        except ValueError:
            self.fail("invalid")

    default_error_messages = {"invalid": "Write a day as YYYY-MM-DD or as unix seconds."}


def _saved(message: str, dp: DigiPayProgram) -> Response:
    return Response(envelope.ok({"message": message, "referral_program_id": dp.public_id}))


class ReferralProgramApi(DigiPayApi):
    """POST creates a program; GET lists the company's programs."""

    class ListQuery(serializers.Serializer):
        skip = serializers.IntegerField(min_value=0, max_value=10**9, default=0)
        limit = serializers.IntegerField(min_value=1, max_value=100, default=10)
        status = serializers.ChoiceField(
            choices=mapping.STATUS_CHOICES,
            required=False,
            help_text="1 active, 2 inactive, 3 expired (active, but its last day is past).",
        )
        is_active = serializers.ChoiceField(
            choices=mapping.FLAG_CHOICES,
            required=False,
            help_text="1: status 1 only; 0: the others.",
        )
        search_keyword = serializers.CharField(
            max_length=200, required=False, allow_blank=True, help_text="In title or message."
        )
        start_date = DayField(
            required=False, help_text="Programs that started on this day or later."
        )
        end_date = DayField(
            required=False, help_text="Programs that started on this day or earlier."
        )
        sorting = serializers.ChoiceField(
            choices=list(selectors.SORTINGS), default="-created_at", help_text="- for descending."
        )

    @extend_schema(
        operation_id="digipay_referral_program_create",
        tags=[TAG],
        parameters=HEADER_PARAMETERS,
        request=ProgramInput,
        responses=_responses(DigiPaySaved, 400),
    )
    def post(self, request):
        company = company_of(request)
        body = ProgramInput(data=request.data, context={"company": company})
        body.is_valid(raise_exception=True)
        data = body.validated_data
        dp = _call(
            lambda: services.program_create(
                company=company,
                actor=actor_of(request, "referral_program.create"),
                fields=mapping.program_fields(data),
                condition=data.get("referral_condition"),
            )
        )
        return _saved(SAVED, dp)

    @extend_schema(
        operation_id="digipay_referral_program_list",
        tags=[TAG],
        parameters=[*HEADER_PARAMETERS, ListQuery],
        responses=_responses(DigiPayProgramList, 400),
    )
    def get(self, request):
        query = self.ListQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        q = query.validated_data
        company = company_of(request)
        total, rows = selectors.programs_list(
            company=company,
            filters=selectors.ProgramFilter(
                status=q.get("status"),
                is_active=None if q.get("is_active") is None else bool(q["is_active"]),
                search_keyword=q.get("search_keyword", ""),
                start_date=q.get("start_date"),
                end_date=q.get("end_date"),
                sorting=q["sorting"],
            ),
            skip=q["skip"],
            limit=q["limit"],
        )
        currency_ids = selectors.company_currency_ids(company=company)
        programs = [selectors.program_as_dict(dp, currency_ids=currency_ids) for dp in rows]
        data = {
            "referral_programs": ProgramOutput(programs, many=True).data,
            "total_count": total,
            "skip": q["skip"],
            "limit": q["limit"],
        }
        return Response(envelope.ok(data))


ID_PARAMETER = OpenApiParameter(
    "referral_program_id",
    str,
    OpenApiParameter.PATH,
    description="The program's 32-hex id, as POST answered it.",
)


class ReferralProgramDetailApi(DigiPayApi):
    """GET reads, PUT changes, DELETE removes one program of the company."""

    @extend_schema(
        operation_id="digipay_referral_program_read",
        tags=[TAG],
        parameters=[*HEADER_PARAMETERS, ID_PARAMETER],
        responses=_responses(DigiPayProgramDetail, 404),
    )
    def get(self, request, referral_program_id: str):
        dp = self.program(referral_program_id)
        return Response(
            envelope.ok({"referral_program": ProgramOutput(selectors.program_as_dict(dp)).data})
        )

    @extend_schema(
        operation_id="digipay_referral_program_update",
        tags=[TAG],
        parameters=[*HEADER_PARAMETERS, ID_PARAMETER],
        request=ProgramUpdateInput,
        responses=_responses(DigiPaySaved, 400, 404),
    )
    def put(self, request, referral_program_id: str):
        dp = self.program(referral_program_id)
        body = ProgramUpdateInput(data=request.data, context={"company": dp.company})
        body.is_valid(raise_exception=True)
        data = body.validated_data
        _call(
            lambda: services.program_update(
                dp=dp,
                actor=actor_of(request, "referral_program.update"),
                fields=mapping.program_fields(data),
                condition=data.get("referral_condition", services.UNCHANGED),
            )
        )
        return _saved(UPDATED, dp)

    @extend_schema(
        operation_id="digipay_referral_program_delete",
        tags=[TAG],
        parameters=[*HEADER_PARAMETERS, ID_PARAMETER],
        responses=_responses(DigiPaySaved, 400, 404),
    )
    def delete(self, request, referral_program_id: str):
        dp = self.program(referral_program_id)
        _call(
            lambda: services.program_delete(
                dp=dp, actor=actor_of(request, "referral_program.delete")
            )
        )
        return _saved(DELETED, dp)
