"""Mounted at /digipay/: the spec's routes have no trailing slash; anything else is a 404 envelope."""

from django.urls import path, re_path

from digipay_api import apis
from digipay_api.envelope import route_not_found

app_name = "digipay"

urlpatterns = [
    path(
        "v3/reward_promotion/referral_program",
        apis.ReferralProgramApi.as_view(),
        name="referral-program",
    ),
    path(
        "v3/reward_promotion/referral_program/<str:referral_program_id>",
        apis.ReferralProgramDetailApi.as_view(),
        name="referral-program-detail",
    ),
    re_path(r"^.*$", route_not_found, name="not-found"),
]
