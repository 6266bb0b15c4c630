"""Texts from customers: Twilio's inbound-message webhook.

Only requests signed by Twilio (X-Twilio-Signature over TWILIO_INBOUND_URL and the form
fields, checked with the package's validator in bookings.sms_twilio) are read; anything else
is a 403. STOP and START change the opt-out list, HELP gets our details as the reply, and
anything else goes to the handoff queue for staff. Each text is recorded once by its
MessageSid, so a webhook Twilio delivers twice changes nothing and replies nothing more.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from bookings.models import InboundTextMessage
from bookings.sms_twilio import signature_valid, twiml_reply
from bookings.text_messages import help_reply, inbound_text_receive
from chatdesk.conversations.services import text_handoff_create


@csrf_exempt  # Twilio cannot hold a CSRF token; its signature is the proof of origin
@require_POST
def twilio_inbound(request: HttpRequest) -> HttpResponse:
    url = settings.TWILIO_INBOUND_URL or request.build_absolute_uri()
    if not signature_valid(url=url, params=request.POST, signature=request.headers.get("X-Twilio-Signature", "")):
        return HttpResponseForbidden("Invalid or missing Twilio signature.", content_type="text/plain")
    sid = request.POST.get("MessageSid") or request.POST.get("SmsSid") or ""
    sender = request.POST.get("From") or ""
    if not sid or not sender:
        return HttpResponseBadRequest("MessageSid and From are required.", content_type="text/plain")
    text, new = inbound_text_receive(provider_id=sid, from_phone=sender, body=request.POST.get("Body") or "")
    reply = None
    if new and text.keyword == InboundTextMessage.Keyword.HELP:
        reply = help_reply()
    elif new and text.keyword == InboundTextMessage.Keyword.OTHER:
        customer = text.customer
        text_handoff_create(
            customer_id=customer.pk if customer else None,
            phone=text.from_phone,
            name=customer.name if customer else "",
            text=text.body,
        )
    return HttpResponse(twiml_reply(reply), content_type="text/xml")
