"""Routes of the staff booking API, mounted at /api/v1/bookings/ by chatdesk.urls."""

from django.urls import path

from bookings import identifiers  # noqa: F401 (identifiers registers `ident`)
from chatdesk.backoffice import booking_api as api

urlpatterns = [
    path("", api.BookingListCreateAPI.as_view(), name="staff-bookings"),
    path("<ident:number>", api.BookingDetailAPI.as_view(), name="staff-booking"),
    path("<ident:number>/reschedule", api.BookingRescheduleAPI.as_view(), name="staff-booking-reschedule"),
    path("<ident:number>/cancel", api.BookingCancelAPI.as_view(), name="staff-booking-cancel"),
    path("<ident:number>/confirm", api.BookingConfirmAPI.as_view(), name="staff-booking-confirm"),
    path("<ident:number>/complete", api.BookingCompleteAPI.as_view(), name="staff-booking-complete"),
    path("<ident:number>/no-show", api.BookingNoShowAPI.as_view(), name="staff-booking-no-show"),
]
