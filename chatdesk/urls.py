from django.contrib import admin
from django.urls import path

admin.site.site_header = "Chatdesk"
admin.site.site_title = "Chatdesk staff"

urlpatterns = [
    path("admin/", admin.site.urls),
]
