"""The admin site: named for the product, opening on the dashboard, the domain apps first and
the plumbing (sign-in, tokens, sessions, jobs, history, operations) last under one heading."""

import functools

from django.contrib import admin

from common.charts import bar_chart
from common.money import money_format
from dashboard import selectors

PRODUCT = "Promotions & referrals engine"

# The domain in the order an operator works through it; apps not named come after these.
DOMAIN_ORDER = ["promotions", "referrals", "billing", "digipay_api"]
# What runs the product rather than what it sells: gathered under one heading, last.
PLUMBING_APPS = {
    "auth",
    "authtoken",
    "sessions",
    "common",
    "ops",
    "billmgr_api",
    "django_tasks_database",
    "django_tasks_db",
}
PLUMBING_MODELS = {("digipay_api", "ApiToken")}
PLUMBING = "Plumbing: sign-in, tokens, sessions, jobs, history, operations"
# The dashboard's parts and the permission that shows each.
DASHBOARD_PARTS = {
    "promotions": "promotions.view_promotion",
    "referrals": "referrals.view_reward",
    "jobs": "common.view_job",
}


class CockpitSite(admin.AdminSite):
    site_header = PRODUCT
    site_title = PRODUCT
    index_title = "Dashboard"
    index_template = "admin/dashboard.html"

    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)
        if app_label is not None:
            return apps
        domain, plumbing = [], []
        for app in apps:
            if app["app_label"] in PLUMBING_APPS:
                plumbing += [{**m, "name": f"{m['name']} ({app['name']})"} for m in app["models"]]
                continue
            moved = [
                m for m in app["models"] if (app["app_label"], m["object_name"]) in PLUMBING_MODELS
            ]
            plumbing += [{**m, "name": f"{m['name']} ({app['name']})"} for m in moved]
            kept = [m for m in app["models"] if m not in moved]
            if kept:
                domain.append({**app, "models": kept})
        rank = {label: i for i, label in enumerate(DOMAIN_ORDER)}
        domain.sort(key=lambda app: (rank.get(app["app_label"], len(rank)), app["name"]))
        if plumbing:
            domain.append(
                {
                    "name": PLUMBING,
                    "app_label": "plumbing",
                    "app_url": "#plumbing",
                    "has_module_perms": True,
                    "models": plumbing,
                }
            )
        return domain

    def index(self, request, extra_context=None):
        # Each part of the dashboard is shown to those who may read its lists.
        shown = {
            part: request.user.has_perm(permission) for part, permission in DASHBOARD_PARTS.items()
        }
        if not any(shown.values()):
            return super().index(request, extra_context)
        figures = selectors.dashboard()
        charts = [
            bar_chart(
                [(f"{day:%m-%d}", given.per_day.get(day, 0)) for day in figures.days],
                title=f"Discount given per day, last {len(figures.days)} days ({given.currency})",
                shown=functools.partial(
                    money_format, currency=given.currency, minor_units=given.minor_units
                ),
            )
            for given in figures.given
        ]
        extra_context = {
            **(extra_context or {}),
            "dashboard": figures,
            "charts": charts if shown["promotions"] else [],
            "shown": shown,
        }
        return super().index(request, extra_context)
