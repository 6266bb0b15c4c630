"""The booking domain of a home-services dispatcher.

Times are stored in UTC and presented in the business time zone (settings.TIME_ZONE).
Writes that change a booking go through bookings.services; reads for customers go through
bookings.selectors, which decide what a customer (or the model) may see.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q

from bookings import limits
from bookings.phones import phone_display


class Weekday(models.IntegerChoices):
    # Same numbering as datetime.date.weekday(), which the availability engine relies on.
    MONDAY = 0, "Monday"
    TUESDAY = 1, "Tuesday"
    WEDNESDAY = 2, "Wednesday"
    THURSDAY = 3, "Thursday"
    FRIDAY = 4, "Friday"
    SATURDAY = 5, "Saturday"
    SUNDAY = 6, "Sunday"


class Trade(models.Model):
    name = models.CharField(max_length=60, unique=True)
    slug = models.SlugField(max_length=60, unique=True)
    description = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Service(models.Model):
    trade = models.ForeignKey(Trade, on_delete=models.PROTECT, related_name="services")
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    duration_minutes = models.PositiveIntegerField()
    price_min = models.DecimalField(max_digits=10, decimal_places=2)
    # Null for a fixed price; set for a range ("$150 to $400 depending on parts").
    price_max = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=3, default=settings.BUSINESS_CURRENCY)
    # Travel and prep time: the technician is busy but the customer is not visited.
    buffer_before_minutes = models.PositiveIntegerField(default=0)
    buffer_after_minutes = models.PositiveIntegerField(default=0)
    min_notice_minutes = models.PositiveIntegerField(default=120)
    is_emergency = models.BooleanField(default=False)
    active = models.BooleanField(default=True)
    # What customers call it ("furnace, no heat, banging"): the guided chat matches their
    # words against these (bookings.service_matching), so staff tune them without a deploy.
    keywords = models.TextField(
        blank=True,
        help_text=(
            "Words and phrases customers use for this service, separated by commas "
            "(e.g. furnace, no heat, banging noise). Case, plurals and small typos are forgiven."
        ),
    )

    class Meta:
        ordering = ["trade__name", "name"]
        constraints = [
            models.CheckConstraint(condition=Q(duration_minutes__gt=0), name="service_duration_positive"),
            models.CheckConstraint(
                condition=Q(price_max__isnull=True) | Q(price_max__gte=models.F("price_min")),
                name="service_price_range_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.trade.name})"

    @property
    def duration(self) -> timedelta:
        return timedelta(minutes=self.duration_minutes)

    @property
    def buffer_before(self) -> timedelta:
        return timedelta(minutes=self.buffer_before_minutes)

    @property
    def buffer_after(self) -> timedelta:
        return timedelta(minutes=self.buffer_after_minutes)

    @property
    def min_notice(self) -> timedelta:
        return timedelta(minutes=self.min_notice_minutes)

    @property
    def price_display(self) -> str:
        if self.price_max is not None and self.price_max != self.price_min:
            return f"{self.price_min:,.2f}–{self.price_max:,.2f} {self.currency}"
        return f"{self.price_min:,.2f} {self.currency}"


class Technician(models.Model):
    """A technician. Fields under 'internal' are for staff only (never to a customer or the model).

    Called Employee until the vocabulary was made one: the table (and every column pointing
    here, via db_column) keeps its old name, so the rename moved no data and the PostgreSQL
    exclusion constraint of migration 0002 (over `employee_id`) still holds.
    """

    first_name = models.CharField(max_length=60)
    last_name = models.CharField(max_length=60)
    title = models.CharField(max_length=100, blank=True)
    trades = models.ManyToManyField(Trade, related_name="technicians")
    active = models.BooleanField(default=True)
    # internal
    phone = models.CharField(max_length=20, blank=True)
    email = models.EmailField(blank=True)
    pay_rate = models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True)
    home_address = models.CharField(max_length=300, blank=True)

    class Meta:
        db_table = "bookings_employee"
        ordering = ["first_name", "last_name"]

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def public_name(self) -> str:
        """What a customer is told: first name and last initial."""
        return f"{self.first_name} {self.last_name[:1]}.".strip()


class WorkingHours(models.Model):
    technician = models.ForeignKey(
        Technician, on_delete=models.CASCADE, related_name="working_hours", db_column="employee_id"
    )
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    start_time = models.TimeField()
    end_time = models.TimeField()

    class Meta:
        ordering = ["technician", "weekday", "start_time"]
        verbose_name_plural = "working hours"
        constraints = [
            models.CheckConstraint(condition=Q(start_time__lt=models.F("end_time")), name="working_hours_ordered"),
        ]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.start_time:%H:%M}-{self.end_time:%H:%M}"


class BusinessHours(models.Model):
    """Business-wide opening hours: visits happen only inside them."""

    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    opens = models.TimeField()
    closes = models.TimeField()

    class Meta:
        ordering = ["weekday", "opens"]
        verbose_name_plural = "business hours"
        constraints = [
            models.CheckConstraint(condition=Q(opens__lt=models.F("closes")), name="business_hours_ordered"),
        ]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.opens:%H:%M}-{self.closes:%H:%M}"


class ClosedDay(models.Model):
    date = models.DateField(unique=True)
    reason = models.CharField(max_length=120, blank=True)

    class Meta:
        ordering = ["date"]

    def __str__(self) -> str:
        return f"{self.date} {self.reason}".strip()


class CalendarEvent(models.Model):
    """Time a technician cannot be booked: time off, training, meetings."""

    class Kind(models.TextChoices):
        TIME_OFF = "time_off", "Time off"
        TRAINING = "training", "Training"
        MEETING = "meeting", "Meeting"
        OTHER = "other", "Other"

    technician = models.ForeignKey(
        Technician, on_delete=models.CASCADE, related_name="calendar_events", db_column="employee_id"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.TIME_OFF)
    title = models.CharField(max_length=120, blank=True)
    start = models.DateTimeField()
    end = models.DateTimeField()

    class Meta:
        ordering = ["start"]
        constraints = [
            models.CheckConstraint(condition=Q(start__lt=models.F("end")), name="calendar_event_ordered"),
        ]
        indexes = [
            # selectors.available_slots and the re-check in booking_create fetch events
            # overlapping a window for a set of technicians.
            models.Index(fields=["technician", "start", "end"], name="calendar_event_window"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.technician} {self.start:%Y-%m-%d %H:%M}"


class Customer(models.Model):
    name = models.CharField(max_length=limits.MAX_NAME)
    # E.164, normalized by bookings.phones.normalize_phone; the identity we match on.
    phone = models.CharField(max_length=20, unique=True)
    email = models.EmailField(blank=True)
    address = models.CharField(max_length=limits.MAX_ADDRESS, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Consent to text messages (bookings.text_messages), as the customer gave it in a
    # conversation: when they answered, the exact question they were asked and their answer,
    # and where (the conversation's number). Null when they never agreed, or said no later.
    sms_consent_at = models.DateTimeField("agreed to texts at", null=True, blank=True)
    sms_consent_wording = models.TextField("question asked", blank=True)
    sms_consent_reply = models.TextField("customer's answer", blank=True)
    sms_consent_source = models.CharField("where", max_length=120, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({phone_display(self.phone)})"


class BookingStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    CONFIRMED = "confirmed", "Confirmed"
    CANCELLED = "cancelled", "Cancelled"
    COMPLETED = "completed", "Completed"
    NO_SHOW = "no_show", "No-show"


# Statuses that hold a technician's time. The PostgreSQL exclusion constraint (migration
# 0002) repeats this list in SQL: change both together.
ACTIVE_STATUSES = (BookingStatus.PENDING, BookingStatus.CONFIRMED)


class Channel(models.TextChoices):
    CHAT = "chat", "Chat"
    VOICE = "voice", "Voice"
    STAFF = "staff", "Staff"
    API = "api", "API"


class Booking(models.Model):
    number = models.CharField(max_length=20, unique=True, editable=False)
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="bookings")
    # The column keeps its old name: migration 0002's exclusion constraint is written over it.
    technician = models.ForeignKey(
        Technician, on_delete=models.PROTECT, related_name="bookings", db_column="employee_id"
    )
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="bookings")
    start = models.DateTimeField()
    end = models.DateTimeField()
    # The technician's busy period: the visit plus the service's travel/prep buffers.
    occupied_start = models.DateTimeField()
    occupied_end = models.DateTimeField()
    status = models.CharField(max_length=20, choices=BookingStatus.choices, default=BookingStatus.CONFIRMED)
    estimated_price_min = models.DecimalField(max_digits=10, decimal_places=2)
    estimated_price_max = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=3, default=settings.BUSINESS_CURRENCY)
    address = models.CharField(max_length=limits.MAX_ADDRESS)
    notes = models.TextField(blank=True)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    cancellation_reason = models.CharField(max_length=limits.MAX_REASON, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    reminder_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-start"]
        constraints = [
            models.CheckConstraint(condition=Q(start__lt=models.F("end")), name="booking_ordered"),
            models.CheckConstraint(
                condition=Q(occupied_start__lte=models.F("start")) & Q(occupied_end__gte=models.F("end")),
                name="booking_occupied_covers_visit",
            ),
        ]
        indexes = [
            # The availability engine reads active bookings overlapping a window per technician.
            models.Index(
                fields=["technician", "occupied_start", "occupied_end"],
                name="booking_employee_window",  # the index keeps its name from before the rename
                condition=Q(status__in=["pending", "confirmed"]),
            ),
            # Admin date hierarchy, reminders ("bookings tomorrow") and reports.
            models.Index(fields=["start"], name="booking_start"),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def price_display(self) -> str:
        if self.estimated_price_max is not None and self.estimated_price_max != self.estimated_price_min:
            return f"{self.estimated_price_min:,.2f}–{self.estimated_price_max:,.2f} {self.currency}"
        return f"{self.estimated_price_min:,.2f} {self.currency}"


class ActorKind(models.TextChoices):
    CUSTOMER = "customer", "Customer"
    STAFF = "staff", "Staff"
    SYSTEM = "system", "System"


class BookingEvent(models.Model):
    """Audit row for every state change of a booking, with who acted."""

    class Kind(models.TextChoices):
        CREATED = "created", "Created"
        RESCHEDULED = "rescheduled", "Rescheduled"
        CANCELLED = "cancelled", "Cancelled"
        CONFIRMED = "confirmed", "Confirmed"
        COMPLETED = "completed", "Completed"
        NO_SHOW = "no_show", "No-show"
        REMINDER_SENT = "reminder_sent", "Reminder sent"

    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    actor_kind = models.CharField(max_length=10, choices=ActorKind.choices)
    actor_channel = models.CharField(max_length=10, choices=Channel.choices, blank=True)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Free-form provenance: the conversation number and tool call id for chat/voice actions.
    actor_reference = models.CharField(max_length=120, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.booking.number} {self.kind}"


class YearlyCounter(models.Model):
    """Per-year counters behind BK-YYYY-NNNNNN and INT-YYYY-NNNNN numbers.

    Incremented with a row lock inside the caller's transaction (bookings.numbering), so
    two concurrent transactions never get the same number. A rolled-back transaction
    gives its number back; a deleted row leaves a gap, which is fine.
    """

    name = models.CharField(max_length=20)
    year = models.PositiveSmallIntegerField()
    last_value = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "year"], name="yearly_counter_unique")]

    def __str__(self) -> str:
        return f"{self.name}-{self.year}: {self.last_value}"


def new_feed_token() -> str:
    # 256 bits from the OS's CSPRNG, URL-safe: the token is the feed's only credential.
    return secrets.token_urlsafe(32)


class CalendarFeed(models.Model):
    """A secret iCalendar feed URL (bookings.calendar_feeds): one per technician, one for the business.

    The token is kept as issued, not hashed, so the admin can show the URL again to staff who
    may change bookings; it grants read access to one calendar only, and rotating it
    (calendar_feeds.feed_rotate) replaces it, so the old URL answers 404 from then on.
    """

    class Kind(models.TextChoices):
        BUSINESS = "business", "Whole business"
        TECHNICIAN = "technician", "Technician"

    kind = models.CharField(max_length=12, choices=Kind.choices)
    technician = models.OneToOneField(
        Technician, null=True, blank=True, on_delete=models.CASCADE, related_name="calendar_feed"
    )
    token = models.CharField(max_length=64, unique=True, default=new_feed_token, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    rotated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(Q(kind="business") & Q(technician__isnull=True))
                | (Q(kind="technician") & Q(technician__isnull=False)),
                name="calendar_feed_kind_matches_technician",
            ),
            # One business feed, even when two staff members create it at once.
            models.UniqueConstraint(fields=["kind"], condition=Q(kind="business"), name="calendar_feed_one_business"),
        ]

    def __str__(self) -> str:
        return f"Calendar feed: {self.technician or 'whole business'}"


class TextOptOut(models.Model):
    """A phone number that gets no text messages: the customer replied STOP, or staff added it.

    Keyed by the number, not the customer: STOP comes from a phone, and it holds for every
    booking on that number, including ones made later. START (or staff) removes the row.
    """

    class Source(models.TextChoices):
        CUSTOMER = "customer", "Customer replied STOP"
        STAFF = "staff", "Added by staff"
        PROVIDER = "provider", "Provider says unsubscribed"

    # E.164, like Customer.phone.
    phone = models.CharField(max_length=20, unique=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.STAFF)
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "text opt-out"

    def __str__(self) -> str:
        # No number: this string lands in admin messages and LogEntry, which staff without
        # view_customer_pii read too.
        return f"Text opt-out {self.pk}"


class TextMessage(models.Model):
    """One text message to a customer about a booking: the outbox row and its delivery record.

    Written in the transaction that changed the booking (bookings.services), so a booking
    change and its message commit together or not at all; bookings.text_messages sends it
    exactly once (a conditional UPDATE claims it) and records the outcome here.
    """

    class Kind(models.TextChoices):
        CONFIRMATION = "confirmation", "Confirmation"
        RESCHEDULE = "reschedule", "Rescheduled"
        CANCELLATION = "cancellation", "Cancellation"
        REMINDER = "reminder", "Day-before reminder"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        HELD = "held", "Held for quiet hours"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed, will retry"
        UNDELIVERABLE = "undeliverable", "Not delivered (gave up)"
        SKIPPED = "skipped", "Not sent"

    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, related_name="text_messages")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # What makes the message one of a kind: "event:<BookingEvent id>" for a change, and
    # "reminder:<booking id>:<visit start>" for a reminder (one per visit time). The unique
    # index is what stops two concurrent send_reminders runs from queueing it twice.
    key = models.CharField(max_length=120, unique=True)
    to_phone = models.CharField(max_length=20)
    body = models.TextField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    # Not before this moment: the end of quiet hours for a held message.
    send_after = models.DateTimeField()
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)
    provider_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            # text_messages.due_text_messages: waiting messages whose time has come.
            models.Index(
                fields=["send_after"],
                name="text_message_due",
                condition=Q(status__in=["queued", "held", "failed"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.booking_id}"


class InboundTextMessage(models.Model):
    """A text a customer sent us (the Twilio webhook): STOP, START, HELP, or anything else."""

    class Keyword(models.TextChoices):
        STOP = "stop", "STOP (opted out)"
        START = "start", "START (opted in again)"
        HELP = "help", "HELP (sent our details)"
        OTHER = "other", "Message for staff"

    # The provider's id (Twilio's MessageSid): a webhook delivered twice is recorded once.
    provider_id = models.CharField(max_length=64, unique=True)
    from_phone = models.CharField(max_length=20)
    body = models.TextField(blank=True)
    keyword = models.CharField(max_length=10, choices=Keyword.choices)
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at"]
        verbose_name = "text from a customer"
        verbose_name_plural = "texts from customers"

    def __str__(self) -> str:
        return f"Text {self.pk} from a customer: {self.get_keyword_display()}"
