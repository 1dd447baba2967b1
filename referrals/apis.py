"""REST twins of attribution: attach a referred client by partner code or by link."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.models import Client
from common.apis import Conflict, HasPerm, api_actor, service_call
from referrals import services
from referrals.models import LinkClick, Referral, ReferralProgram, partner_link


class ReferralOutput(serializers.ModelSerializer):
    class Meta:
        model = Referral
        fields = ["id", "program", "partner", "client", "source", "via", "joined_at"]


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

    class ClickOutput(serializers.ModelSerializer):
        link = serializers.SerializerMethodField()

        class Meta:
            model = LinkClick
            fields = ["id", "program", "partner", "visitor", "clicked_at", "link"]

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
                program=program, partner_id=data["partner"], visitor=data["visitor"]
            )
        )
        return Response(self.ClickOutput(click).data, status=status.HTTP_201_CREATED)
