"""Calendar feeds for staff: the public .ics URL, and the admin page that hands the URLs out.

The feed itself is built in bookings.calendar_feeds; these are the doors. The feed URL has
no login (a calendar app cannot log in): its secret token is the credential, so an unknown
or rotated token is a plain 404, as if the URL had never existed. The admin page lists the
business's feed and each active technician's, with the URL to copy and a button to issue a
new one, for staff who may change bookings (they already see every visit).
"""

from __future__ import annotations

import hashlib

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.cache import get_conditional_response
from django.views.decorators.http import require_POST, require_safe

from bookings.calendar_feeds import REFRESH_INTERVAL, feed_by_token, feed_ical, feed_name, feed_rotate, feeds_by_owner
from bookings.models import CalendarFeed, Technician
from chatdesk.backoffice.common import Users
from chatdesk.conversations import access

# Calendar apps poll; a proxy or the app may reuse an answer this long. Private: the
# response is one person's calendar.
FEED_MAX_AGE_SECONDS = int(REFRESH_INTERVAL.total_seconds()) // 4


def can_share_calendar_feeds(user: Users) -> bool:
    """Staff who may change bookings see every visit already, so they may hand out feed URLs
    (the staff policy's door for changing bookings: Dispatchers, Owners)."""
    return access.may(user, access.CHANGE_BOOKINGS)


@require_safe
def feed_view(request: HttpRequest, token: str) -> HttpResponse:
    """GET/HEAD /calendar/<token>.ics: the feed, with an ETag so an unchanged feed costs a 304."""
    feed = feed_by_token(token)
    if feed is None:
        raise Http404("No such calendar feed.")
    body = feed_ical(feed)
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    response["ETag"] = etag
    response["Cache-Control"] = f"private, max-age={FEED_MAX_AGE_SECONDS}"
    response["Content-Disposition"] = 'inline; filename="chatdesk.ics"'
    # The URL is a secret: keep it out of search engines and out of Referer headers.
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "no-referrer"
    return get_conditional_response(request, etag=etag, response=response)


def feed_url(request: HttpRequest, feed: CalendarFeed) -> str:
    return request.build_absolute_uri(reverse("calendar-feed", args=[feed.token]))


class CalendarFeedAdmin(admin.ModelAdmin):
    """Not a list of rows: one page with every feed, created and rotated by a button (POST)."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return can_share_calendar_feeds(request.user)

    def has_view_permission(self, request: HttpRequest, obj: object | None = None) -> bool:
        return can_share_calendar_feeds(request.user)

    # Tokens are issued only by feed_rotate, never typed or deleted by hand.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object | None = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        return [
            path("", self.admin_site.admin_view(self.feeds_view), name="bookings_calendarfeed_changelist"),
            path("rotate/", self.admin_site.admin_view(self.rotate_view), name="bookings_calendarfeed_rotate"),
        ]

    def feeds_view(self, request: HttpRequest) -> TemplateResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        business, by_technician = feeds_by_owner()
        rows = [{"label": "Whole business (all technicians)", "owner": "business", "feed": business}]
        for technician in Technician.objects.filter(active=True).order_by("first_name", "last_name"):
            rows.append(
                {"label": str(technician), "owner": str(technician.pk), "feed": by_technician.get(technician.pk)}
            )
        for row in rows:
            row["url"] = feed_url(request, row["feed"]) if row["feed"] else ""
        context = {
            **self.admin_site.each_context(request),
            "title": "Calendar feeds",
            "opts": self.model._meta,
            "rows": rows,
        }
        return TemplateResponse(request, "admin/bookings/calendarfeed/feeds.html", context)

    def rotate_view(self, request: HttpRequest) -> HttpResponse:
        return _rotate(request, self)


@require_POST
def _rotate(request: HttpRequest, model_admin: CalendarFeedAdmin) -> HttpResponse:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    owner = request.POST.get("owner", "")
    if owner == "business":
        technician = None
    elif owner.isdigit():
        technician = get_object_or_404(Technician, pk=int(owner), active=True)
    else:
        raise Http404("No such calendar feed.")
    feed = feed_rotate(technician=technician)
    if feed.rotated_at is None:  # just created
        note = f"URL created for {feed_name(feed)}."
    else:
        note = f"New URL for {feed_name(feed)}. The previous URL no longer works: share this one instead."
    messages.success(request, note)
    return HttpResponseRedirect(reverse("admin:bookings_calendarfeed_changelist"))


admin.site.register(CalendarFeed, CalendarFeedAdmin)
