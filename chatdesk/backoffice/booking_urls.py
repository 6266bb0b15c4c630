"""Routes of the staff booking API, mounted at /api/v1/bookings/ by chatdesk.urls."""

from django.urls import path

from chatdesk.backoffice import booking_api as api

urlpatterns = [
    path("", api.BookingListCreateAPI.as_view(), name="staff-bookings"),
    path("<str:number>", api.BookingDetailAPI.as_view(), name="staff-booking"),
    path("<str:number>/reschedule", api.BookingRescheduleAPI.as_view(), name="staff-booking-reschedule"),
    path("<str:number>/cancel", api.BookingCancelAPI.as_view(), name="staff-booking-cancel"),
    path("<str:number>/confirm", api.BookingConfirmAPI.as_view(), name="staff-booking-confirm"),
    path("<str:number>/complete", api.BookingCompleteAPI.as_view(), name="staff-booking-complete"),
    path("<str:number>/no-show", api.BookingNoShowAPI.as_view(), name="staff-booking-no-show"),
]
