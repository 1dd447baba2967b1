from django.contrib import admin

from referrals.models import ReferralProgram


@admin.register(ReferralProgram)
class ReferralProgramAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "provider"]
    search_fields = ["name"]
