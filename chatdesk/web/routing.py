from django.urls import path

from chatdesk.web import consumers

websocket_urlpatterns = [
    path("api/v1/chat/live", consumers.CustomerLiveConsumer.as_asgi()),
    path("api/v1/staff/live", consumers.StaffLiveConsumer.as_asgi()),
]
