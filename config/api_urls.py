from django.urls import path

from billing import apis as billing_apis
from common.apis import JobApi, TokenObtainApi
from promotions import apis as promotion_apis
from referrals import apis as referral_apis

urlpatterns = [
    path("auth/token", TokenObtainApi.as_view(), name="api-token"),
    path("quotes", promotion_apis.QuoteApi.as_view(), name="quote-create"),
    path("redemptions", promotion_apis.RedemptionCreateApi.as_view(), name="redemption-create"),
    path(
        "redemptions/<int:redemption_id>/release",
        promotion_apis.RedemptionReleaseApi.as_view(),
        name="redemption-release",
    ),
    path("promotions", promotion_apis.PromotionListApi.as_view(), name="promotion-list"),
    path(
        "promotions/<int:promotion_id>/backtest",
        promotion_apis.PromotionBacktestApi.as_view(),
        name="promotion-backtest",
    ),
    path("jobs/<int:job_id>", JobApi.as_view(), name="job-detail"),
    path("promocodes", promotion_apis.PromoCodeListApi.as_view(), name="promocode-list"),
    path("referrals/attach", referral_apis.ReferralAttachApi.as_view(), name="referral-attach"),
    path("referrals/clicks", referral_apis.LinkClickCreateApi.as_view(), name="link-click"),
    path("expenses", billing_apis.ExpenseCreateApi.as_view(), name="expense-create"),
    path("rewards", referral_apis.RewardListApi.as_view(), name="reward-list"),
    path("payout-batches", referral_apis.PayoutBatchListCreateApi.as_view(), name="payout-batches"),
    path(
        "payout-batches/<int:batch_id>/file",
        referral_apis.PayoutBatchFileApi.as_view(),
        name="payout-batch-file",
    ),
    path(
        "payout-batches/<int:batch_id>/status",
        referral_apis.PayoutBatchStatusApi.as_view(),
        name="payout-batch-status",
    ),
]
