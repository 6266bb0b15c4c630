"""Chatdesk settings: one module, driven by environment variables.

A bare checkout runs with nothing set (SQLite under var/, in-memory channel layer, no
OpenAI key). Every production knob is an environment variable documented in README.md.
"""

from __future__ import annotations

import copy
import ipaddress
import os
import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def envint(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


def envdecimal(name: str, default: str) -> Decimal:
    return Decimal(os.environ.get(name) or default)


def envstr(name: str, default: str = "") -> str:
    """Read NAME, or the contents of the file named by NAME_FILE (for Docker/K8s secrets)."""
    if os.environ.get(f"{name}_FILE"):
        return Path(os.environ[f"{name}_FILE"]).read_text().strip()
    return os.environ.get(name, default)


def envlist(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = envbool("DEBUG", False)

SECRET_KEY = envstr("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    # Only for local development: `make run` sets DEBUG=1.
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production-" + "x" * 20

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "")

# The business's own sites that may show the chat widget (static/widget.js): origins such as
# https://www.example.com, or https://*.example.com for its subdomains. They become the
# `frame-ancestors` of the widget's pages only (chatdesk/web/widget.py); every other page keeps
# X-Frame-Options: DENY. Our own origin may always frame it (the admin's preview). A typo stops
# startup rather than silently leaving the widget blank on the business's site.
WIDGET_ALLOWED_ORIGINS = [origin.rstrip("/").lower() for origin in envlist("WIDGET_ALLOWED_ORIGINS", "")]
for _origin in WIDGET_ALLOWED_ORIGINS:
    if not re.fullmatch(r"https?://(\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?", _origin):
        raise ImproperlyConfigured(
            f"WIDGET_ALLOWED_ORIGINS: {_origin!r} is not an origin like https://www.example.com "
            "(scheme and host, optional port, no path)."
        )

INSTALLED_APPS = [
    "daphne",  # first, so `runserver` serves ASGI (HTTP + WebSocket)
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "channels",
    "rest_framework",
    "drf_spectacular",
    "django_ratelimit",
    "axes",
    "bookings",
    "chatdesk",
    "voice",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    # The JSON error contract for /api/, and a 503 page when the database or Redis is down.
    "chatdesk.api_errors.ApiErrors",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # With a read replica: a signed-in user who just wrote reads the primary for a few seconds.
    "chatdesk.db_router.StickToPrimary",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a refused admin login into the lockout page (async-native,
    # so it costs other requests no trip to the sync thread).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "chatdesk.urls"
ASGI_APPLICATION = "chatdesk.asgi.application"
WSGI_APPLICATION = "chatdesk.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
(BASE_DIR / "var").mkdir(exist_ok=True)
DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'var' / 'chatdesk.sqlite3'}"
_db = dj_database_url.parse(DATABASE_URL)
if _db["ENGINE"] == "django.db.backends.postgresql":
    # Opening a connection costs ~2.6 ms; under ASGI every request would pay it, so use
    # Django's psycopg pool. CONN_MAX_AGE must be 0 with the pool.
    _db["CONN_MAX_AGE"] = 0
    _db.setdefault("OPTIONS", {})["pool"] = {
        "min_size": envint("DB_POOL_MIN", 2),
        "max_size": envint("DB_POOL_MAX", 20),
        # How long a request waits for a connection; after it, PoolTimeout: a 503 with Retry-After.
        "timeout": envint("DB_POOL_TIMEOUT", 10),
    }
elif _db["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE takes the write lock at BEGIN, so the check-then-insert in booking_create
    # is serialized on SQLite (it has no exclusion constraints). WAL lets readers proceed.
    _db.setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
DATABASES = {"default": _db}
# A streaming replica of the primary (optional): the heavy staff reads (admin lists, dashboard,
# analytics, exports, cost report) go there; everything else stays on the primary
# (chatdesk/db_router.py, chatdesk/replica.py). Same engine options and pool size as the primary.
DATABASE_REPLICA_URL = os.environ.get("DATABASE_REPLICA_URL", "")
if DATABASE_REPLICA_URL:
    _replica = dj_database_url.parse(DATABASE_REPLICA_URL)
    if _replica["ENGINE"] != _db["ENGINE"]:
        raise ImproperlyConfigured("DATABASE_REPLICA_URL must use the same database engine as DATABASE_URL")
    _replica["CONN_MAX_AGE"] = _db["CONN_MAX_AGE"]
    _replica["OPTIONS"] = {**copy.deepcopy(_db.get("OPTIONS", {})), **_replica.get("OPTIONS", {})}
    # In the test run, the replica alias reads the test database (no second one is created).
    _replica["TEST"] = {"MIRROR": "default"}
    DATABASES["replica"] = _replica
DATABASE_ROUTERS = ["chatdesk.db_router.PrimaryUnlessMarked"]
# After a signed-in user's write, their browser reads the primary this long (replica lag cover).
REPLICA_STICKY_SECONDS = envint("REPLICA_STICKY_SECONDS", 5)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache, rate limits, channel layer ------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
# How long the live sockets' Redis connections wait for a reply. channels_redis blocks in
# BZPOPMIN for 5 s at a time, and redis-py 8 gives up on a read after 5 s by default: the two
# race, and every idle live socket died every 5 s (issue 11). Well above 5 s, so only a dead
# connection times out.
CHANNEL_LAYER_SOCKET_TIMEOUT = float(os.environ.get("CHANNEL_LAYER_SOCKET_TIMEOUT", "15"))
if REDIS_URL:
    from redis.exceptions import ConnectionError as RedisConnectionError

    # After Redis restarts, every pooled connection is dead but looks idle: each one's first
    # command would fail. Retried once on a fresh connection instead, so nothing notices.
    _redis_reconnect = {"retry_on_error": [RedisConnectionError]}
    CACHES = {
        "default": {
            # Redis, counting per process while Redis is unreachable (chatdesk/fallback_cache.py).
            "BACKEND": "chatdesk.fallback_cache.FallbackRedisCache",
            "LOCATION": REDIS_URL,
            # Counters answer in a millisecond: a server that does not answer in 2 s is down.
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 2, **_redis_reconnect},
            "RETRY_SECONDS": float(os.environ.get("REDIS_RETRY_SECONDS", "5")),
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            # channels_redis's layer, reading a worker's waiting messages in batches (why there).
            "BACKEND": "chatdesk.channel_layer.RedisChannelLayer",
            "CONFIG": {
                # channels_redis counts its capacity (100 by default) per worker, not per socket:
                # all of a worker's sockets share one queue in Redis, and what comes while it is
                # full is dropped. 100 sockets' streamed replies filled it in a burst.
                "capacity": 2000,
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_timeout": CHANNEL_LAYER_SOCKET_TIMEOUT,
                        "socket_connect_timeout": 2,
                        **_redis_reconnect,
                    }
                ],
            },
        }
    }
    # Django's Redis cache implements incr atomically (INCRBY); ratelimit only warns
    # because it cannot tell.
    SILENCED_SYSTEM_CHECKS = ["django_ratelimit.W001"]
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    # The embedded default is one process, where LocMem's incr (under its own lock) is
    # atomic. Deployments with several processes must set REDIS_URL.
    SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001"]

RATELIMIT_EXCEPTION_CLASS = "rest_framework.exceptions.Throttled"
# The chat's rate limits only (new conversations and messages, chatdesk.assistant.rate_limits);
# voice calls have their own switch below, so a benchmark can lift one without the other.
RATELIMIT_ENABLE = envbool("RATELIMIT_ENABLE", True)

# Proxies whose X-Forwarded-For is believed (IPs or CIDRs). Empty: the client is the peer the
# server saw, whatever headers it sent (chatdesk.conversations.client_ip).
TRUSTED_PROXIES = envlist("TRUSTED_PROXIES", "")
for _proxy in TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError as _error:
        raise ImproperlyConfigured(f"TRUSTED_PROXIES: {_proxy!r} is not an IP address or network.") from _error

# --- Auth, i18n, static ---------------------------------------------------------------
# Admin login throttling (django-axes). Failed logins are counted in the database (shared by
# every process, with or without Redis, on SQLite and PostgreSQL), per username and per client
# IP separately: LOGIN_FAILURE_LIMIT failures for either lock it for LOGIN_LOCKOUT_MINUTES.
# Tries during a lock are refused without extending it, so the owner typing the right password
# is not kept out longer. Superusers unlock early by deleting the row in the admin (Axes >
# Access attempts) or with `manage.py axes_reset_username NAME` / `axes_reset_ip IP`.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked login before checking it
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = envint("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=envint("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = True
# The client IP every door uses (X-Forwarded-For only from TRUSTED_PROXIES).
AXES_CLIENT_IP_CALLABLE = "chatdesk.conversations.client_ip.client_ip"
AXES_LOCKOUT_CALLABLE = "chatdesk.backoffice.login_lockout.lockout_response"
# Only what the throttle needs: no log of every successful login (it would keep staff IPs
# forever, outside the retention rules).
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False  # no banner on every manage.py command; lockouts are still logged

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
BUSINESS_TIMEZONE = os.environ.get("BUSINESS_TIMEZONE", "America/Toronto")
TIME_ZONE = BUSINESS_TIMEZONE
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Where `manage.py collectstatic` writes. nginx serves it at /static/ in the production recipe
# (deploy/), and the app serves it too (WhiteNoise, chatdesk/static_files.py) behind any other proxy.
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT") or BASE_DIR / "var" / "staticfiles")

# --- Security -------------------------------------------------------------------------
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = envbool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = envbool("SECURE_COOKIES", not DEBUG)
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", False)
if not SECURE_HSTS_PRELOAD:
    # Preloading is a one-way commitment (browsers hard-code HTTPS for the domain and every
    # subdomain for months), so the operator opts in; until then its deploy warning is noise.
    SILENCED_SYSTEM_CHECKS.append("security.W021")
# Probes talk to a worker directly over plain HTTP (deploy/rolling-restart.sh), and so may a
# Prometheus on the private network or loopback (/metrics; its token is sent on the first
# request either way): a redirect to HTTPS would hide the answer.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
if os.environ.get("SECURE_PROXY_SSL_HEADER"):
    SECURE_PROXY_SSL_HEADER = (os.environ["SECURE_PROXY_SSL_HEADER"], "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# CSP.NONCE is replaced by the request's nonce only on pages that use it (the API docs'
# inline start-up script and style); elsewhere it is left out, so those stay 'self' only.
SECURE_CSP = {
    "default-src": ["'self'"],
    "script-src": ["'self'", CSP.NONCE],
    "style-src": ["'self'", CSP.NONCE],
    "img-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "media-src": ["'self'", "blob:"],
    "frame-ancestors": ["'none'"],
    "form-action": ["'self'"],
}

# --- Email ----------------------------------------------------------------------------
# Console by default (make run prints confirmations); set EMAIL_BACKEND to the SMTP backend
# with EMAIL_HOST etc. in production.
_email_backend = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
_email_options: dict = {}
if _email_backend.endswith("smtp.EmailBackend"):
    _email_options = {
        "host": os.environ.get("EMAIL_HOST", "localhost"),
        "port": envint("EMAIL_PORT", 587),
        "username": os.environ.get("EMAIL_HOST_USER", ""),
        "password": envstr("EMAIL_HOST_PASSWORD"),
        "use_tls": envbool("EMAIL_USE_TLS", True),
    }
MAILERS = {"default": {"BACKEND": _email_backend, "OPTIONS": _email_options}}
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "bookings@chatdesk.local")

# --- Text messages (SMS) --------------------------------------------------------------
# Like EMAIL_BACKEND: the console backend prints texts (make run needs nothing); production
# sets the Twilio backend and its credentials. bookings.sms loads it.
SMS_BACKEND = os.environ.get("SMS_BACKEND", "bookings.sms.ConsoleBackend")
TWILIO_ACCOUNT_SID = os.environ.get("TWILIO_ACCOUNT_SID", "")
TWILIO_AUTH_TOKEN = envstr("TWILIO_AUTH_TOKEN")
# The sender: a Twilio number in E.164, or a Messaging Service SID (MG...).
TWILIO_FROM = os.environ.get("TWILIO_FROM", "")
# Empty: Twilio's own API. The tests point it at a loopback fake of the Messages API.
TWILIO_API_BASE_URL = os.environ.get("TWILIO_API_BASE_URL", "").rstrip("/")
# The public URL Twilio calls for inbound texts, exactly as configured in Twilio (its signature
# covers it). Empty: the URL the request arrived on, which is only right without a proxy.
TWILIO_INBOUND_URL = os.environ.get("TWILIO_INBOUND_URL", "")
SMS_TIMEOUT_SECONDS = envint("SMS_TIMEOUT_SECONDS", 10)
# Texts are not sent between these times (business time zone); they wait until the end.
SMS_QUIET_HOURS = os.environ.get("SMS_QUIET_HOURS", "21:00-08:00").strip()
if SMS_QUIET_HOURS and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d", SMS_QUIET_HOURS):
    raise ImproperlyConfigured("SMS_QUIET_HOURS must look like 21:00-08:00 (or be empty for none).")
# Attempts before a text that keeps failing is given up.
SMS_MAX_ATTEMPTS = envint("SMS_MAX_ATTEMPTS", 5)
if SMS_BACKEND.endswith("TwilioBackend") and not (TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN and TWILIO_FROM):
    raise ImproperlyConfigured("The Twilio SMS backend needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM.")

# --- REST framework -------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "chatdesk.api_errors.exception_handler",
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Chatdesk API",
    # The description (with the WebSocket protocols) is set by chatdesk.openapi.postprocess.
    "DESCRIPTION": "AI receptionist for home-services businesses.",
    "VERSION": "1.0.0",
    # The schema documents the API, not itself (nor /api/docs/).
    "SERVE_INCLUDE_SCHEMA": False,
    # Request bodies get components of their own, so a required string says minLength 1 there only.
    "COMPONENT_SPLIT_REQUEST": True,
    "TAGS": [
        {"name": "chat", "description": "The customer's chat: start, send messages, read the transcript, close."},
        {"name": "staff", "description": "Staff: live conversations (take over, reply, hand back) and analytics."},
        {"name": "bookings", "description": "Staff: list, book, move, cancel and change the status of visits."},
    ],
    "ENUM_NAME_OVERRIDES": {
        "BookingStatusEnum": "bookings.models.BookingStatus",
        "ConversationStatusEnum": "chatdesk.openapi.CONVERSATION_STATUSES",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "chatdesk.openapi.postprocess",
    ],
    # Identifiers in paths (bookings.identifiers): a string of this shape.
    "PATH_CONVERTER_OVERRIDES": {"ident": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}},
}

# --- The business ---------------------------------------------------------------------
BUSINESS_NAME = os.environ.get("BUSINESS_NAME", "Maple Home Services")
BUSINESS_PHONE = os.environ.get("BUSINESS_PHONE", "+1 416 555 0100")
BUSINESS_CURRENCY = os.environ.get("BUSINESS_CURRENCY", "CAD")
# Only used by seed_demo when no opening hours exist yet; staff edit them in the admin.
BUSINESS_HOURS = os.environ.get("BUSINESS_HOURS", "mon-fri 08:00-18:00; sat 09:00-14:00")
DEFAULT_PHONE_REGION = os.environ.get("DEFAULT_PHONE_REGION", "CA")
SLOT_GRID_MINUTES = envint("SLOT_GRID_MINUTES", 30)
BOOKING_HORIZON_DAYS = envint("BOOKING_HORIZON_DAYS", 60)
# Public holidays of the business's region for the `holidays` package: "CA-ON" is country CA,
# subdivision ON; "" turns holiday names off. chatdesk.assistant.dates names them, seed_demo closes them.
BUSINESS_HOLIDAYS = os.environ.get("BUSINESS_HOLIDAYS", "CA-ON").strip().upper()
if BUSINESS_HOLIDAYS and not re.fullmatch(r"[A-Z]{2,3}(-[A-Z0-9]{1,4})?", BUSINESS_HOLIDAYS):
    raise ImproperlyConfigured("BUSINESS_HOLIDAYS must look like CA-ON (country, optional subdivision) or be empty.")

# --- OpenAI ---------------------------------------------------------------------------
OPENAI_API_KEY = envstr("OPENAI_API_KEY")
OPENAI_BASE_URL = os.environ.get("OPENAI_BASE_URL") or None
OPENAI_MODEL = os.environ.get("OPENAI_MODEL", "gpt-6-luna")
OPENAI_REASONING_EFFORT = os.environ.get("OPENAI_REASONING_EFFORT", "low")
OPENAI_TIMEOUT_SECONDS = float(os.environ.get("OPENAI_TIMEOUT_SECONDS", "25"))
OPENAI_MAX_OUTPUT_TOKENS = envint("OPENAI_MAX_OUTPUT_TOKENS", 800)
# A reply cut off at max_output_tokens is asked for once more with twice the budget, at most this.
OPENAI_RETRY_MAX_OUTPUT_TOKENS = envint("OPENAI_RETRY_MAX_OUTPUT_TOKENS", 2000)
OPENAI_REALTIME_MODEL = os.environ.get("OPENAI_REALTIME_MODEL", "gpt-realtime-2.1-mini")
OPENAI_REALTIME_VOICE = os.environ.get("OPENAI_REALTIME_VOICE", "marin")
# USD per 1M tokens. Override with OPENAI_PRICES_JSON when prices change.
OPENAI_PRICES = {
    "gpt-6-luna": {"input": Decimal("0.10"), "cached_input": Decimal("0.01"), "output": Decimal("0.50")},
    "gpt-realtime-2.1-mini": {
        "text_input": Decimal("0.60"),
        "text_cached_input": Decimal("0.06"),
        "text_output": Decimal("2.40"),
        "audio_input": Decimal("10"),
        "audio_cached_input": Decimal("0.30"),
        "audio_output": Decimal("20"),
    },
    # Input transcription on calls (OPENAI_REALTIME_TRANSCRIPTION_MODEL), billed apart from the
    # realtime model: per 1M audio input / prompt text / transcript tokens, and per_minute (USD per
    # minute of audio) when the API reports duration instead of tokens. OpenAI's published rates
    # ($0.003 and $0.006 a minute); override with OPENAI_PRICES_JSON when they change.
    "gpt-4o-mini-transcribe": {
        "audio_input": Decimal("3.00"),
        "text_input": Decimal("1.25"),
        "text_output": Decimal("5.00"),
        "per_minute": Decimal("0.003"),
    },
    "gpt-4o-transcribe": {
        "audio_input": Decimal("6.00"),
        "text_input": Decimal("2.50"),
        "text_output": Decimal("10.00"),
        "per_minute": Decimal("0.006"),
    },
}
if os.environ.get("OPENAI_PRICES_JSON"):
    import json

    OPENAI_PRICES = {
        model: {kind: Decimal(str(v)) for kind, v in table.items()}
        for model, table in json.loads(os.environ["OPENAI_PRICES_JSON"]).items()
    }

# Per-conversation limits (enforced in Python, never left to the model).
CHAT_MAX_MESSAGE_CHARS = envint("CHAT_MAX_MESSAGE_CHARS", 2000)
CHAT_MAX_MESSAGES = envint("CHAT_MAX_MESSAGES", 50)
CHAT_MAX_BOOKINGS = envint("CHAT_MAX_BOOKINGS", 3)
CHAT_MAX_TOOL_ROUNDS = envint("CHAT_MAX_TOOL_ROUNDS", 5)
# Tool calls run per model response and per customer turn (text message or caller turn);
# the calls beyond are recorded, not run, and the model is told (chatdesk.assistant.tools).
CHAT_MAX_TOOL_CALLS_PER_RESPONSE = envint("CHAT_MAX_TOOL_CALLS_PER_RESPONSE", 8)
CHAT_MAX_TOOL_CALLS_PER_TURN = envint("CHAT_MAX_TOOL_CALLS_PER_TURN", 12)
# Failed booking number + phone lookups before lookups are refused (in text and voice),
# per conversation and per client IP, counted in the shared cache; the lock lasts this
# long after the last failure.
CHAT_LOOKUP_FAILURES_PER_CONVERSATION = envint("CHAT_LOOKUP_FAILURES_PER_CONVERSATION", 5)
CHAT_LOOKUP_FAILURES_PER_IP = envint("CHAT_LOOKUP_FAILURES_PER_IP", 10)
CHAT_LOOKUP_LOCK_SECONDS = envint("CHAT_LOOKUP_LOCK_SECONDS", 1800)
CHAT_SPEND_CAP_USD = envdecimal("CHAT_SPEND_CAP_USD", "0.50")
CHAT_RATE_SESSION_PER_IP = os.environ.get("CHAT_RATE_SESSION_PER_IP", "20/h")
CHAT_RATE_MESSAGE_PER_IP = os.environ.get("CHAT_RATE_MESSAGE_PER_IP", "120/m")
CHAT_RATE_MESSAGE_PER_SESSION = os.environ.get("CHAT_RATE_MESSAGE_PER_SESSION", "20/m")

# --- Logs and metrics (README, "Metrics and logs") ---------------------------------------
# json: one JSON object a line with the request id and conversation number (production);
# text: plain lines for a terminal (DEBUG, make run). Both mask phone numbers and secrets
# (chatdesk/log_lines.py).
LOG_FORMAT = os.environ.get("LOG_FORMAT", "").strip().lower() or ("text" if DEBUG else "json")
if LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured("LOG_FORMAT must be json or text.")
_log_level = os.environ.get("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "chatdesk.log_lines.ContextFilter"}},
    "formatters": {
        "json": {"()": "chatdesk.log_lines.JsonFormatter"},
        "text": {"()": "chatdesk.log_lines.TextFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context"]}},
    "root": {"handlers": ["console"], "level": _log_level},
    "loggers": {
        # The SDK's HTTP client logs every request at INFO: noise, and a cost per model call.
        "httpx2": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        # Twilio's HTTP client too: each text's request and headers at INFO.
        "twilio.http_client": {"level": "WARNING"},
        # uvicorn configured its own handlers before loading us: its lines (the access log's
        # paths carry session ids) go through our formatter and scrub instead.
        "uvicorn": {"handlers": ["console"], "level": _log_level, "propagate": False},
        "uvicorn.error": {"handlers": [], "level": _log_level, "propagate": True},
        "uvicorn.access": {"handlers": ["console"], "level": _log_level, "propagate": False},
    },
}

# The operator's bearer token for GET /metrics (chatdesk/metrics_view.py); unset, /metrics is a 404.
METRICS_TOKEN = envstr("METRICS_TOKEN").strip()
if METRICS_TOKEN and len(METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("METRICS_TOKEN must be at least 16 characters (e.g. `openssl rand -hex 32`).")
# Several workers on one host share their metrics through this directory (prometheus_client's
# multiprocess mode). It is read from the environment by prometheus_client itself, at import:
# checked here so a missing directory stops startup with a clear message, not an mmap error.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
if _metrics_dir and not Path(_metrics_dir).is_dir():
    raise ImproperlyConfigured(f"PROMETHEUS_MULTIPROC_DIR={_metrics_dir} is not a directory: create it (empty) first.")

CSRF_FAILURE_VIEW = "chatdesk.web.views.csrf_failure"
INSTALLED_APPS.append("drf_spectacular_sidecar")
SPECTACULAR_SETTINGS.update(
    {
        # Served from our own static files: no CDN, and it fits the CSP.
        "SWAGGER_UI_DIST": "SIDECAR",
        "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
        "REDOC_DIST": "SIDECAR",
    }
)

# --- Voice calls (voice/: browser <-> our server <-> OpenAI Realtime) ---------------------
# Limits per call and per client IP; the close codes they produce are in voice/PROTOCOL.md.
VOICE_MAX_CALL_SECONDS = float(os.environ.get("VOICE_MAX_CALL_SECONDS") or 900)
# Nobody spoke (caller or assistant) for this long: the call ends.
VOICE_IDLE_SECONDS = float(os.environ.get("VOICE_IDLE_SECONDS") or 60)
VOICE_MAX_FRAME_BYTES = envint("VOICE_MAX_FRAME_BYTES", 32768)
VOICE_MAX_TEXT_FRAME_CHARS = envint("VOICE_MAX_TEXT_FRAME_CHARS", 4096)
VOICE_MAX_FRAMES_PER_SECOND = envint("VOICE_MAX_FRAMES_PER_SECOND", 50)
VOICE_MAX_CONCURRENT_CALLS_PER_IP = envint("VOICE_MAX_CONCURRENT_CALLS_PER_IP", 3)
VOICE_CALLS_PER_HOUR_PER_IP = envint("VOICE_CALLS_PER_HOUR_PER_IP", 30)
# The two per-IP call limits above (voice.limits); off only for benchmarks, where every simulated
# browser shares one IP. Not RATELIMIT_ENABLE: that one is the chat's.
VOICE_LIMITS_ENABLE = envbool("VOICE_LIMITS_ENABLE", True)
# Voice audio costs ~40x text per token: a call has its own cap, checked after each response.
VOICE_SPEND_CAP_USD = envdecimal("VOICE_SPEND_CAP_USD", "2.00")
VOICE_CONNECT_TIMEOUT_SECONDS = float(os.environ.get("VOICE_CONNECT_TIMEOUT_SECONDS") or 10)
# The assistant speaks first ("Maple Home Services, how can I help?") like a receptionist.
VOICE_GREET_FIRST = envbool("VOICE_GREET_FIRST", True)
# "server_vad" (fixed silence) or "semantic_vad" (waits while the caller sounds unfinished).
OPENAI_REALTIME_TURN_DETECTION = os.environ.get("OPENAI_REALTIME_TURN_DETECTION", "server_vad")
OPENAI_REALTIME_VAD_SILENCE_MS = envint("OPENAI_REALTIME_VAD_SILENCE_MS", 500)
OPENAI_REALTIME_TRANSCRIPTION_MODEL = os.environ.get("OPENAI_REALTIME_TRANSCRIPTION_MODEL", "gpt-4o-mini-transcribe")
OPENAI_REALTIME_MAX_OUTPUT_TOKENS = envint("OPENAI_REALTIME_MAX_OUTPUT_TOKENS", 1024)
# The account's rate limits (chatdesk.assistant.openai_budget), shared by every worker through
# the cache. 0 = unknown: learnt from OpenAI's x-ratelimit-* headers, which win whenever known.
OPENAI_LIMIT_RPM = envint("OPENAI_LIMIT_RPM", 0)
OPENAI_LIMIT_TPM = envint("OPENAI_LIMIT_TPM", 0)
# Longest a chat turn (or a call's start) waits for budget before the guided flow (or a polite
# refusal of the call) instead.
OPENAI_BUDGET_WAIT_SECONDS = float(os.environ.get("OPENAI_BUDGET_WAIT_SECONDS") or 5)
if OPENAI_LIMIT_RPM < 0 or OPENAI_LIMIT_TPM < 0 or OPENAI_BUDGET_WAIT_SECONDS < 0:
    raise ImproperlyConfigured("OPENAI_LIMIT_RPM, OPENAI_LIMIT_TPM and OPENAI_BUDGET_WAIT_SECONDS cannot be negative.")

# A streamed reply's pieces go to the customer's page at most this often after the first, which
# goes at once (chatdesk.conversations.live.ReplyStream); 0 sends every piece as it comes.
REPLY_STREAM_INTERVAL_SECONDS = float(os.environ.get("REPLY_STREAM_INTERVAL_SECONDS") or 0.1)
if REPLY_STREAM_INTERVAL_SECONDS < 0:
    raise ImproperlyConfigured("REPLY_STREAM_INTERVAL_SECONDS cannot be negative.")

# --- Draining a worker on SIGTERM (chatdesk/drain.py) ---------------------------------------
# From SIGTERM, turns already running get this long to finish; what still runs then answers 503
# server_draining (the message stays stored; a retry with its message id is answered elsewhere).
DRAIN_SECONDS = float(os.environ.get("DRAIN_SECONDS") or 20)
# Within that, how long an open call gets to hear the assistant's goodbye before it is ended.
VOICE_GOODBYE_SECONDS = float(os.environ.get("VOICE_GOODBYE_SECONDS") or 8)
# The shared lease on a message being answered (chatdesk/assistant/turn_lease.py): it lapses this
# long after its worker stops refreshing it (a SIGKILL), and then a retry is answered elsewhere.
TURN_LEASE_SECONDS = float(os.environ.get("TURN_LEASE_SECONDS") or 10)
# A worker's full garbage collections run when nothing is in flight, and at the latest this long
# after the last one (chatdesk/collector.py: CPython's own schedule paused streams 30-115 ms in
# the middle of bursts); 0 leaves CPython's schedule alone.
FULL_COLLECTION_MAX_SECONDS = float(os.environ.get("FULL_COLLECTION_MAX_SECONDS") or 30)
if FULL_COLLECTION_MAX_SECONDS < 0:
    raise ImproperlyConfigured("FULL_COLLECTION_MAX_SECONDS cannot be negative.")
for _name in ("DRAIN_SECONDS", "VOICE_GOODBYE_SECONDS", "TURN_LEASE_SECONDS"):
    if globals()[_name] <= 0:
        raise ImproperlyConfigured(f"{_name} must be a positive number of seconds.")
