from django.contrib import admin

from billmgr_api.models import BillmgrSession


@admin.register(BillmgrSession)
class BillmgrSessionAdmin(admin.ModelAdmin):
    list_display = ["user", "created_at", "last_seen"]
    exclude = ["key"]
    readonly_fields = ["user", "created_at", "last_seen"]
