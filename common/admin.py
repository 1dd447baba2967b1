from django.contrib import admin

from common.models import History


@admin.register(History)
class HistoryAdmin(admin.ModelAdmin):
    list_display = ["changedate", "content_type", "object_id", "desc", "username", "ip", "action"]
    list_filter = ["content_type", "action"]
    search_fields = ["desc", "username"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
