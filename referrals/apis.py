"""REST twins of attribution: attach a referred client by partner code or by link."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.models import Client
from common.apis import Conflict, HasPerm, api_actor
from referrals import services
from referrals.models import Referral, ReferralProgram


class ReferralOutput(serializers.ModelSerializer):
    class Meta:
        model = Referral
        fields = ["id", "program", "partner", "client", "source", "joined_at"]


class ReferralAttachApi(APIView):
    required_perm = "referrals.add_referral"
    permission_classes = [HasPerm]

    class AttachInput(serializers.Serializer):
        client = serializers.IntegerField(min_value=1)
        code = serializers.CharField(max_length=100, required=False)
        partner = serializers.IntegerField(min_value=1, required=False)
        program = serializers.IntegerField(min_value=1, required=False)
        source = serializers.ChoiceField(choices=["link"], required=False, default="link")

        def validate(self, data):
            if "code" not in data and not {"partner", "program"} <= data.keys():
                raise ValidationError("Send `code`, or `partner` and `program` for a link.")
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
            else:
                referral = services.referral_attach(
                    client=client,
                    partner_id=data["partner"],
                    program=get_object_or_404(ReferralProgram, pk=data["program"]),
                    source=Referral.Source.LINK,
                    actor=actor,
                )
        except services.AttachRefused as exc:
            return Response({"detail": exc.reason}, status=status.HTTP_409_CONFLICT)
        return Response(ReferralOutput(referral).data, status=status.HTTP_201_CREATED)
