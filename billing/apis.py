"""Expense intake: the charges referral rewards accrue on."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.models import Client, Currency, Expense, Service
from billing.services import expense_create
from common.apis import HasPerm, service_call


class ExpenseOutput(serializers.ModelSerializer):
    currency = serializers.CharField(source="currency.iso")

    class Meta:
        model = Expense
        fields = ["id", "client", "service", "amount", "currency", "created_at"]


class ExpenseCreateApi(APIView):
    required_perm = "billing.add_expense"
    permission_classes = [HasPerm]

    class ExpenseInput(serializers.Serializer):
        client = serializers.IntegerField(min_value=1)
        service = serializers.IntegerField(min_value=1, required=False, allow_null=True)
        amount = serializers.DecimalField(max_digits=20, decimal_places=4)
        currency = serializers.CharField(max_length=32)
        created_at = serializers.DateTimeField(required=False, allow_null=True)

    @extend_schema(
        request=ExpenseInput, responses={201: ExpenseOutput}, operation_id="expense_create"
    )
    def post(self, request):
        data = self.ExpenseInput(data=request.data)
        data.is_valid(raise_exception=True)
        data = data.validated_data
        currency = Currency.objects.filter(iso=data["currency"].upper()).first()
        if currency is None:
            raise ValidationError({"currency": [f"Unknown currency {data['currency']}."]})
        expense = service_call(
            lambda: expense_create(
                client=get_object_or_404(Client, pk=data["client"]),
                service=get_object_or_404(Service, pk=data["service"])
                if data.get("service")
                else None,
                amount=data["amount"],
                currency=currency,
                created_at=data.get("created_at"),
            )
        )
        return Response(ExpenseOutput(expense).data, status=status.HTTP_201_CREATED)
