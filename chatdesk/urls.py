from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView

import voice.views
from bookings import identifiers  # noqa: F401 (registers the `ident` path converter)
from chatdesk import health, metrics_view
from chatdesk.backoffice import calendar_feeds, staff_api, staff_live
from chatdesk.openapi import DocsView
from chatdesk.web import api, sms, views, widget

# The API answers these in JSON, and a 503 when a service is down (chatdesk.api_errors).
handler400 = "chatdesk.api_errors.bad_request"
handler500 = "chatdesk.api_errors.server_error"

admin.site.site_header = "Chatdesk"
admin.site.site_title = "Chatdesk staff"

urlpatterns = [
    # Probes for nginx, systemd scripts and load balancers (chatdesk/health.py).
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("", views.chat_page, name="chat"),
    path("send", views.chat_page_send, name="chat-send"),
    path("restart", views.chat_page_restart, name="chat-restart"),
    # The website widget: the script businesses embed, and the compact chat page it frames.
    path("widget.js", widget.widget_script, name="widget-js"),
    path("widget/", views.widget_chat_page, name="widget"),
    path("widget/send", views.widget_send, name="widget-send"),
    path("widget/restart", views.widget_restart, name="widget-restart"),
    path("voice/", voice.views.voice_page, name="voice"),
    path("api/v1/chat/voice/session", voice.views.CallSessionAPI.as_view(), name="voice-session"),
    path("api/v1/chat/session/new", api.SessionNewAPI.as_view(), name="chat-session-new"),
    path("api/v1/chat/message", api.ChatMessageAPI.as_view(), name="chat-message"),
    path("api/v1/chat/session/<ident:session_id>/history", api.HistoryAPI.as_view(), name="chat-history"),
    path("api/v1/chat/session/<ident:session_id>/close", api.CloseAPI.as_view(), name="chat-close"),
    # A calendar app's subscription: the token is the credential (chatdesk/backoffice/calendar_feeds.py).
    path("calendar/<str:token>.ics", calendar_feeds.feed_view, name="calendar-feed"),
    # Texts from customers (Twilio's inbound webhook, signed): STOP, START, HELP, or staff.
    path("sms/twilio/inbound", sms.twilio_inbound, name="sms-twilio-inbound"),
    path("staff/live/", staff_live.live_page, name="staff-live"),
    path("api/v1/staff/conversations/open", staff_live.OpenConversationsAPI.as_view(), name="staff-open"),
    path("api/v1/staff/conversations/<ident:number>", staff_live.ConversationAPI.as_view(), name="staff-conversation"),
    path("api/v1/staff/conversations/<ident:number>/takeover", staff_live.TakeOverAPI.as_view(), name="staff-takeover"),
    path("api/v1/staff/conversations/<ident:number>/release", staff_live.HandBackAPI.as_view(), name="staff-release"),
    path("api/v1/staff/conversations/<ident:number>/messages", staff_live.StaffMessageAPI.as_view(), name="staff-say"),
    path("api/v1/bookings/", include("chatdesk.backoffice.booking_urls")),
    path("api/v1/chat/analytics", staff_api.AnalyticsAPI.as_view(), name="chat-analytics"),
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=[]), name="schema"),
    path("api/docs/", DocsView.as_view(url_name="schema", permission_classes=[]), name="api-docs"),
    # Staff bookmarks from before issue 10 renamed the model (Interaction -> Conversation).
    re_path(
        r"^admin/chatdesk/interaction/(?P<rest>.*)$",
        RedirectView.as_view(url="/admin/chatdesk/conversation/%(rest)s", permanent=True, query_string=True),
    ),
    path("admin/", admin.site.urls),
    # The operator's Prometheus scrape: a 404 without METRICS_TOKEN (chatdesk/metrics_view.py).
    path("metrics", metrics_view.metrics, name="metrics"),
]
