"""Settings for the SCRM, driven by environment variables (12-factor).

With no environment at all the project runs in its *embedded* mode: SQLite under ``var/`` and a
Celery broker on the local filesystem, so ``make run`` needs no server. Setting ``DATABASE_URL``
and ``REDIS_URL`` switches the same code to PostgreSQL and Redis.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab
from csp.constants import NONCE
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("SCRM_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=False)


def _embedded_secret_key() -> str:
    """A per-installation random key kept under var/, so no key ever ships in the code."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env.str("SECRET_KEY", default="") or _embedded_secret_key()
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    # Kept installed only for its table: scrm's migration 0002 carried its tokens over to scrm.ApiToken.
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "axes",
    "csp",
    "auditlog",
    "contacts",
    "communities",
    "campaigns",
    "analytics",
    "wecom",
    "demo",
    # Last, so its post_migrate hook (role groups) runs after every app's permissions exist.
    "scrm",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Who did it, from where, web or API: the context of the audit trail (scrm/audit.py).
    "scrm.audit.AuditMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "scrm.middleware.NoStoreForAuthenticatedMiddleware",
    # Last: turns a locked-out sign-in (raised by the backend below) into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "scrm.urls"
WSGI_APPLICATION = "scrm.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "scrm.context_processors.navigation",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'scrm.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + IMMEDIATE transactions let the web process and the worker write without "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Session settings sent with every connection (libpq "options"). JIT is off: the report queries are
    # over in well under a second, and compiling one costs 10-90 ms (the most on a fresh connection,
    # which loads LLVM), more than it saves (bench/analytics_overview.py). work_mem is left to the server:
    # at 32 MB and above the planner hashes half a million per-contact sums of a year's purchases instead
    # of grouping them in index order, which is slower. Set DATABASE_PG_OPTIONS to replace these
    # ("-c jit=off -c work_mem=16MB" ...) or to "" to send none; a URL's own ?options= is kept.
    _pg_options = env.str("DATABASE_PG_OPTIONS", default="-c jit=off")
    if _pg_options:
        DATABASES["default"].setdefault("OPTIONS", {}).setdefault("options", _pg_options)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache ----------------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Auth -----------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out username+IP before any password is checked (django-axes).
    "scrm.authentication.LoginLockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"

# Login lockout (django-axes), for the dashboard's and the admin's login forms alike: after
# AXES_FAILURE_LIMIT failed sign-ins of one username from one IP address, that pair is refused (even with
# the right password) for AXES_COOLOFF_MINUTES; failures older than that no longer count. A lockout answers
# 429 with a translated page. Every sign-in (AccessLog) and failure (AccessFailureLog) is recorded; unlock
# with the admin's "Access attempts" or `manage.py axes_reset_username <username>`. See docs/security.md.
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_HTTP_RESPONSE_CODE = 429
AXES_LOCKOUT_CALLABLE = "scrm.authentication.lockout_response"
AXES_SENSITIVE_PARAMETERS = ["password"]
if env.bool("BEHIND_PROXY", default=False):
    # The client's address is the one the (single) reverse proxy appends to X-Forwarded-For.
    AXES_IPWARE_PROXY_COUNT = env.int("AXES_PROXY_COUNT", default=1)
    AXES_IPWARE_META_PRECEDENCE_ORDER = ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"]

# API tokens (scrm.ApiToken): the default lifetime of a new or rotated token.
SCRM_API_TOKEN_DAYS = env.int("SCRM_API_TOKEN_DAYS", default=90)
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="zh-hans")
# Our own format overrides (scrm/formats/): thousands separators on Chinese pages as on English ones.
FORMAT_MODULE_PATH = ["scrm.formats"]
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="Asia/Shanghai")
USE_I18N = True
USE_TZ = True
SCRM_DEFAULT_PHONE_REGION = env.str("SCRM_DEFAULT_PHONE_REGION", default="CN")
SCRM_CURRENCY = env.str("SCRM_CURRENCY", default="CNY")

# --- Static and uploaded files --------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG and env.bool("STATIC_MANIFEST", default=True)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# --- Security (production values come from the environment) ----------------------------------
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_PROXY", default=False) else None
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"

# Content-Security-Policy (django-csp). Scripts: our own static files only, plus the inline scripts that
# carry this response's nonce (Swagger UI's and ReDoc's start-up scripts); no 'unsafe-inline', no eval.
# Styles allow 'unsafe-inline' because the pages set per-row values in style attributes (tag colours,
# heat-map shades, progress widths) and Swagger UI/htmx inject <style> elements; a style cannot run code.
# img-src allows data: (Swagger UI's icons, Chart.js' exports); worker-src blob: is ReDoc's search worker.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", NONCE],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "worker-src": ["'self'", "blob:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Authorization: Token <key> (or Bearer <key>), checked against scrm.ApiToken's hashed keys. First, so
        # a refused or missing key is answered 401 with a WWW-Authenticate challenge (DRF asks the first class).
        "scrm.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Scopes first: a token that lacks a scope is told which, before model permissions are looked at.
    "DEFAULT_PERMISSION_CLASSES": ["scrm.permissions.TokenScopes", "scrm.permissions.ModelPermissions"],
    # Per token (or signed-in user) and per anonymous IP address; rates from the environment.
    "DEFAULT_THROTTLE_CLASSES": ["scrm.permissions.UserRateThrottle", "scrm.permissions.AnonRateThrottle"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "scrm.api.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "scrm.api.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "user": env.str("SCRM_API_THROTTLE_USER", default="1000/min"),
        "anon": env.str("SCRM_API_THROTTLE_ANON", default="30/min"),
    },
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "SCRM API",
    "DESCRIPTION": "Private-domain operations: contacts, tags, channels, purchases, touchpoints and communities.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Interactive docs are served from our own static files (drf-spectacular-sidecar), never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "ChannelKindEnum": "contacts.models.Channel.Kind",
        "TouchpointKindEnum": "contacts.models.Touchpoint.Kind",
        "CommunityKindEnum": "communities.models.Community.Kind",
        "ImportKindEnum": "contacts.models.ImportJob.Kind",
        "PurchaseStatusEnum": "contacts.models.Purchase.Status",
        "CommunityStatusEnum": "communities.models.Community.Status",
        "ImportStatusEnum": "contacts.models.ImportJob.Status",
        "CampaignMediumEnum": "campaigns.models.Medium",
        "BroadcastStatusEnum": "campaigns.models.Broadcast.Status",
        "DeliveryStatusEnum": "campaigns.models.Delivery.Status",
        "AutomationRunStatusEnum": "campaigns.models.AutomationRun.Status",
        "FollowUpTaskStatusEnum": "campaigns.models.FollowUpTask.Status",
    },
}

# --- Celery ---------------------------------------------------------------------------------
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
else:
    # Longer than any task may run, so an unacknowledged task is not redelivered while it still runs.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 2 * 3600}
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 3600
CELERY_TASK_SOFT_TIME_LIMIT = 3300
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- Campaign gateways ------------------------------------------------------------------------
# Which gateway sends each medium: "outbox" (default: records the rendered message, as if sent), "email"
# (Django's email backend), "webhook" (signed HTTP POST) or "wecom" (WeCom customer broadcast).
SCRM_GATEWAYS = {
    medium: env.str(f"SCRM_GATEWAY_{medium.upper()}", default="outbox")
    for medium in ("wecom", "group", "official_account", "sms", "email")
}
SCRM_GATEWAY_TIMEOUT = env.float("SCRM_GATEWAY_TIMEOUT", default=10.0)
# Uploaded import files (and the original cells of their rejected rows) are deleted this many days after
# the import finished (PIPL: kept no longer than needed).
SCRM_IMPORT_RETENTION_DAYS = env.int("SCRM_IMPORT_RETENTION_DAYS", default=30)
# Export files are deleted this many days after they were written (the job stays, marked expired).
SCRM_EXPORT_RETENTION_DAYS = env.int("SCRM_EXPORT_RETENTION_DAYS", default=7)

# --- Audit trail (scrm/audit.py, docs/security.md) ------------------------------------------------
# Field-by-field changes (django-auditlog) of the rows people edit through the pages, the API and the
# admin. Set-based writes (imports, facts refresh, sending) are recorded as events in scrm.AuditEvent.
_AUDIT_FACTS = ["first_purchase_at", "last_purchase_at", "purchase_count", "total_spent", "last_interaction_at"]
AUDITLOG_INCLUDE_TRACKING_MODELS = (
    {"model": "contacts.Contact", "exclude_fields": [*_AUDIT_FACTS, "referral_count", "stage", "updated_at"]},
    "contacts.Purchase",
    "contacts.TagGroup",
    "contacts.Tag",
    "contacts.Channel",
    "contacts.ChannelSpend",
    "contacts.Product",
    "communities.Community",
    "campaigns.Segment",
    "campaigns.MessageTemplate",
    "campaigns.Broadcast",
    "campaigns.Automation",
    "campaigns.FrequencyPolicy",
    "wecom.LiveCode",
    {"model": "scrm.ApiToken", "exclude_fields": ["key_hash", "last_used_at"]},
    {"model": "auth.User", "exclude_fields": ["password", "last_login"]},
    "auth.Group",
)
# Behind the reverse proxy (BEHIND_PROXY=1), the audit trail records the address the proxy appended to
# X-Forwarded-For (the last one; those before it are whatever the client sent).
AUDIT_TRUST_X_FORWARDED_FOR = env.bool("BEHIND_PROXY", default=False)
WECOM_API_BASE = env.str("WECOM_API_BASE", default="https://qyapi.weixin.qq.com/cgi-bin")
WECOM_CORP_ID = env.str("WECOM_CORP_ID", default="")
WECOM_CORP_SECRET = env.str("WECOM_CORP_SECRET", default="")
# The callback (接收事件服务器): the Token and EncodingAESKey set in WeCom's admin console for the
# customer contact app. Never logged or shown.
WECOM_CALLBACK_TOKEN = env.str("WECOM_CALLBACK_TOKEN", default="")
WECOM_ENCODING_AES_KEY = env.str("WECOM_ENCODING_AES_KEY", default="")
# True when WECOM_API_BASE is the local stand-in (`manage.py wecom_standin`): the pages say it is a
# simulation and offer "simulate a customer scanning this code".
WECOM_SIMULATION = env.bool("WECOM_SIMULATION", default=False)
# Celery queue of the callback processing and welcome messages (欢迎语): WeCom takes a welcome only
# within 20 s of the add, so it must not wait behind broadcast work on the default queue.
WECOM_QUEUE = "wecom"
CELERY_TASK_ROUTES = {
    "wecom.tasks.callback_process": {"queue": WECOM_QUEUE},
    "wecom.tasks.adds_drain": {"queue": WECOM_QUEUE},
}
SCRM_WEBHOOK_URL = env.str("SCRM_WEBHOOK_URL", default="")
SCRM_WEBHOOK_SECRET = env.str("SCRM_WEBHOOK_SECRET", default="")
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="scrm@localhost")

# --- Logging --------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Periodic jobs. The database scheduler copies these into django-celery-beat's tables on start, where
# they can be edited in the admin. Every job is safe to run twice at once.
CELERY_BEAT_SCHEDULE = {
    "contacts-import-sweep": {"task": "contacts.tasks.import_jobs_sweep", "schedule": 300.0},
    "contacts-export-sweep": {"task": "contacts.tasks.export_jobs_sweep", "schedule": 300.0},
    "campaigns-follow-up-reminders": {"task": "campaigns.tasks.follow_up_reminders_tick", "schedule": 60.0},
    # After midnight, so the month that just ended goes into the cohort table.
    "analytics-cohort-rollup": {
        "task": "analytics.tasks.cohort_rollup_refresh_nightly",
        "schedule": crontab(hour=0, minute=20),
    },
    "analytics-scores-refresh": {
        "task": "analytics.tasks.scores_refresh_nightly",
        "schedule": crontab(hour=2, minute=0),
    },
    # WeCom callbacks whose processing died, or that were stored while the broker was down.
    "wecom-callbacks-sweep": {"task": "wecom.tasks.callback_events_sweep", "schedule": 60.0},
    # The nightly full sync of WeCom customers, follows and corp tags (resumes a run that died).
    "wecom-sync-nightly": {"task": "wecom.tasks.sync_run", "schedule": crontab(hour=3, minute=30)},
    # Starts due broadcasts, revives stalled senders, finishes sent broadcasts.
    "campaigns-broadcasts-tick": {"task": "campaigns.tasks.broadcasts_tick", "schedule": 10.0},
    # Finds new trigger events (sign-ups, orders, birthdays, repurchase due ...) and runs due SOP steps.
    "campaigns-automations-tick": {"task": "campaigns.tasks.automations_tick", "schedule": 60.0},
}
# Sending: deliveries claimed per transaction, and how many sender tasks work on one broadcast at once.
SCRM_SEND_CHUNK = env.int("SCRM_SEND_CHUNK", default=1000)
SCRM_SEND_PARALLELISM = env.int("SCRM_SEND_PARALLELISM", default=2)
