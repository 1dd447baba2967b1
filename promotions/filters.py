import django_filters
from django.db.models import F, Q

from promotions.models import PromoCode, Promotion


class PromotionFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")
    status = django_filters.ChoiceFilter(choices=Promotion.Status.choices, method="by_status")

    class Meta:
        model = Promotion
        fields = ["provider", "archived", "name", "status"]

    def by_status(self, queryset, name, value):
        return queryset.with_status(value)


class PromoCodeFilter(django_filters.FilterSet):
    code = django_filters.CharFilter(lookup_expr="istartswith")
    exhausted = django_filters.BooleanFilter(method="by_exhausted")

    class Meta:
        model = PromoCode
        fields = ["promotion", "code", "exhausted"]

    def by_exhausted(self, queryset, name, value):
        used_up = Q(uselimit__isnull=False, use_count__gte=F("uselimit"))
        return queryset.filter(used_up if value else ~used_up)
