from django.contrib import admin
from django.urls import path

from billmgr_api.views import billmgr_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("billmgr", billmgr_view, name="billmgr"),
]
