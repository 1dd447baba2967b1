from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class DashboardConfig(AppConfig):
    """The operator's cockpit: the admin index's figures, read from every app's tables."""

    default = True
    name = "dashboard"
    verbose_name = "Dashboard"


class CockpitAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with the cockpit as its site (INSTALLED_APPS names this instead)."""

    default = False
    default_site = "dashboard.sites.CockpitSite"
