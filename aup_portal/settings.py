"""Settings for the policy acknowledgement portal.

Every deploy-specific value comes from the environment; the defaults suit a laptop (SQLite,
console email, debug off). The README lists each variable.
"""

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), not {value!r}.")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}.") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_days(name: str, default: str) -> list[int]:
    """A comma-separated list of whole numbers of days, largest first."""
    items = env_list(name, default)
    if not all(item.isdigit() and int(item) > 0 for item in items):
        raise ImproperlyConfigured(f"{name} must list whole numbers of days, such as 7,1.")
    return sorted({int(item) for item in items}, reverse=True)


# --- Core --------------------------------------------------------------------------------------

DEBUG = env_bool("DJANGO_DEBUG")
# The fallback starts with "django-insecure-" so that `check --deploy` refuses it.
SECRET_KEY = env_str("DJANGO_SECRET_KEY") or "django-insecure-local-development-key-do-not-deploy"
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    # Before django.contrib.auth, so that `manage.py createsuperuser` is the portal's own,
    # which records the roles it gives in the ledger.
    "acknowledgements",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "django_tasks_db",
    # The read API's documentation page and its Swagger UI files, served from here (no CDN).
    "ninja",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Early: a path or query with a NUL byte would reach the database in many places.
    "acknowledgements.middleware.ControlCharacterMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "acknowledgements.middleware.RequestIdMiddleware",
    "acknowledgements.db_router.ReportingReadsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "acknowledgements.middleware.ActiveSessionMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    # Below the CSP middleware, so it sets the sign-in pages' policy before the header is built.
    "acknowledgements.middleware.SsoFormActionMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "acknowledgements.middleware.PreferredLanguageMiddleware",
    "acknowledgements.middleware.ViewerTimezoneMiddleware",
    "acknowledgements.middleware.StaffMfaMiddleware",
    "acknowledgements.middleware.SigningGateMiddleware",
]

ROOT_URLCONF = "aup_portal.urls"
WSGI_APPLICATION = "aup_portal.wsgi.application"
ASGI_APPLICATION = "aup_portal.asgi.application"

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
                "acknowledgements.context_processors.portal",
            ],
        },
    },
]

# --- Database ----------------------------------------------------------------------------------

# A persistent connection matters: a new PostgreSQL connection per request costs ~5x throughput.
CONN_MAX_AGE = env_int("DJANGO_CONN_MAX_AGE", 60)
if env_str("DATABASE_URL"):
    DATABASES = {
        "default": dj_database_url.parse(
            env_str("DATABASE_URL"), conn_max_age=CONN_MAX_AGE, conn_health_checks=True
        )
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(BASE_DIR / "db.sqlite3"),
            # IMMEDIATE takes SQLite's write lock at BEGIN, so the ledger's read-head-then-insert
            # cannot interleave with another writer.
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
        }
    }
if env_str("DATABASE_REPLICA_URL"):
    DATABASES["replica"] = dj_database_url.parse(
        env_str("DATABASE_REPLICA_URL"), conn_max_age=CONN_MAX_AGE, conn_health_checks=True
    )
    # Tests read the replica as the primary itself.
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
DATABASE_ROUTERS = ["acknowledgements.db_router.ReportingReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Authentication (django-allauth) -----------------------------------------------------------

AUTHENTICATION_BACKENDS = [
    # Answers permission checks only, in one query instead of ModelBackend's two.
    "acknowledgements.auth_backends.PermissionsInOneQuery",
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "acknowledgements:home"
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_SESSION_REMEMBER = False
ACCOUNT_ADAPTER = "acknowledgements.adapters.PortalAccountAdapter"
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Policy portal] "
CACHE_TABLE = "portal_cache"
# Rate limits (sign-in, password reset, declines) and remembered look-ups live in the cache,
# which every process of every machine must share, or each process counts on its own: Redis
# when REDIS_URL is set, else a table of the database (made by migration 0018).
CACHES: dict[str, dict[str, object]]
if env_str("REDIS_URL"):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": env_str("REDIS_URL"),
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": CACHE_TABLE,
            # Each client, person and token counted in a window is a row. Past MAX_ENTRIES the
            # table is culled: expired rows, then a third of the live ones, whatever they count.
            # At the default (300) a flood from many addresses would make the portal forget the
            # limits it enforces; this is far above the keys of a busy day.
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    }
ACCOUNT_RATE_LIMITS = {
    "login_failed": "10/m/ip,5/5m/key",
    "reset_password": "20/m/ip,5/m/key",
    "reset_password_from_key": "20/m/ip",
    "signup": "20/m/ip",
}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes", "webauthn"]
MFA_TOTP_ISSUER = env_str("PORTAL_COMPANY_NAME", "Voipkonnec") + " Policy Portal"
MFA_PASSKEY_LOGIN_ENABLED = True
# Browsers allow WebAuthn on http://localhost only; a laptop's `make run` is served that way.
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = DEBUG
AUTH_USER_MODEL = "acknowledgements.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Sessions end after this many minutes without a request (kept alive by
# middleware.ActiveSessionMiddleware, which writes them at most once a minute).
SESSION_COOKIE_AGE = env_int("PORTAL_SESSION_IDLE_MINUTES", 30) * 60
# Django's database sessions, that once-a-minute write in one statement.
SESSION_ENGINE = "acknowledgements.session_store"

# --- Single sign-on (OpenID Connect, django-allauth's socialaccount) --------------------------

# Sign-in through the company's identity provider. Configured here when PORTAL_OIDC_SERVER_URL
# is set, or in the admin (Social applications, provider "OpenID Connect") when it is not; not
# both for the same provider id. People signing in by SSO for the first time get an account
# (even with PORTAL_OPEN_SIGNUP off), provided the identity provider says their email address
# is verified; an existing person with that verified address is connected instead. Audiences
# follow the PORTAL_OIDC_AUDIENCE_CLAIM claim at every SSO sign-in (acknowledgements/adapters.py).
# The pages under /accounts/ allow the providers' sign-in origins in the CSP's form-action
# (acknowledgements/sso.py).
SOCIALACCOUNT_ADAPTER = "acknowledgements.adapters.PortalSocialAccountAdapter"
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_EMAIL_VERIFICATION = "none"  # the adapter requires the IdP's email_verified
SOCIALACCOUNT_EMAIL_AUTHENTICATION = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True
SOCIALACCOUNT_LOGIN_ON_GET = False  # starting a sign-in is a POST (CSRF-protected)
SOCIALACCOUNT_STORE_TOKENS = False

PORTAL_OIDC_SERVER_URL = env_str("PORTAL_OIDC_SERVER_URL").rstrip("/")
PORTAL_OIDC_PROVIDER_ID = env_str("PORTAL_OIDC_PROVIDER_ID") or "sso"
PORTAL_OIDC_PROVIDER_NAME = env_str("PORTAL_OIDC_PROVIDER_NAME") or "Company SSO"
PORTAL_OIDC_AUDIENCE_CLAIM = env_str("PORTAL_OIDC_AUDIENCE_CLAIM") or "groups"


def env_mapping(name: str) -> dict[str, str]:
    """Pairs "idp-group=slug,other=slug" (";" separates them when group names hold commas)."""
    value = env_str(name).strip()
    separator = ";" if ";" in value else ","
    mapping = {}
    for item in value.split(separator):
        if not item.strip():
            continue
        key, equals, slug = item.rpartition("=")
        if not equals or not key.strip() or not slug.strip():
            raise ImproperlyConfigured(f"{name} must list group=audience-slug pairs, not {item!r}.")
        mapping[key.strip().casefold()] = slug.strip().lower()
    return mapping


PORTAL_OIDC_AUDIENCE_MAP = env_mapping("PORTAL_OIDC_AUDIENCE_MAP")
SOCIALACCOUNT_PROVIDERS = {}
if PORTAL_OIDC_SERVER_URL:
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", PORTAL_OIDC_PROVIDER_ID):
        raise ImproperlyConfigured(
            "PORTAL_OIDC_PROVIDER_ID must be lower-case letters, digits, - and _ (it is part of "
            f"the callback URL and of the evidence), not {PORTAL_OIDC_PROVIDER_ID!r}."
        )
    if not env_str("PORTAL_OIDC_CLIENT_ID"):
        raise ImproperlyConfigured("PORTAL_OIDC_SERVER_URL is set: set PORTAL_OIDC_CLIENT_ID too.")
    SOCIALACCOUNT_PROVIDERS = {
        "openid_connect": {
            "APPS": [
                {
                    "provider_id": PORTAL_OIDC_PROVIDER_ID,
                    "name": PORTAL_OIDC_PROVIDER_NAME,
                    "client_id": env_str("PORTAL_OIDC_CLIENT_ID"),
                    "secret": env_str("PORTAL_OIDC_CLIENT_SECRET"),
                    "settings": {
                        # allauth appends /.well-known/openid-configuration.
                        "server_url": PORTAL_OIDC_SERVER_URL,
                        "oauth_pkce_enabled": True,
                    },
                }
            ]
        }
    }

# --- Internationalisation ----------------------------------------------------------------------

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("fr", "Français")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files and storage -----------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(env_str("PORTAL_MEDIA_ROOT") or BASE_DIR / "var" / "media")
# Receipts and uploads go through Django's storage API: local files by default, any
# S3-compatible object store when PORTAL_STORAGE_BUCKET is set (install the `s3` extra), so
# web and worker machines need no shared disk.
if env_str("PORTAL_STORAGE_BUCKET"):
    DEFAULT_STORAGE = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env_str("PORTAL_STORAGE_BUCKET"),
            "endpoint_url": env_str("PORTAL_STORAGE_ENDPOINT_URL") or None,
            "region_name": env_str("PORTAL_STORAGE_REGION") or None,
            "default_acl": "private",
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
else:
    DEFAULT_STORAGE = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": DEFAULT_STORAGE,
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- Email -------------------------------------------------------------------------------------

DEFAULT_FROM_EMAIL = env_str(
    "DEFAULT_FROM_EMAIL", "Voipkonnec Policy Portal <policies@voipkonnec.com>"
)
SERVER_EMAIL = DEFAULT_FROM_EMAIL
if env_str("EMAIL_HOST"):
    MAILERS = {
        "default": {
            "BACKEND": "acknowledgements.notifications.mail.SMTPBackend",
            "OPTIONS": {
                "host": env_str("EMAIL_HOST"),
                "port": env_int("EMAIL_PORT", 587),
                "username": env_str("EMAIL_HOST_USER"),
                "password": env_str("EMAIL_HOST_PASSWORD"),
                "use_tls": env_bool("EMAIL_USE_TLS", True),
                "timeout": 30,
            },
        }
    }
elif DEBUG:
    # A laptop: each email is one line on the console and kept whole, to read at /dev/outbox/.
    MAILERS = {
        "default": {
            "BACKEND": "acknowledgements.notifications.outbox.OutboxBackend",
            "OPTIONS": {"directory": BASE_DIR / "var" / "outbox"},
        }
    }
else:
    MAILERS = {"default": {"BACKEND": "django.core.mail.backends.console.EmailBackend"}}

# --- Tasks -------------------------------------------------------------------------------------

# "immediate" runs tasks in the web process after commit (a laptop); "database" queues them for
# `manage.py db_worker` (production).
TASK_BACKENDS = {
    "immediate": "django.tasks.backends.immediate.ImmediateBackend",
    "database": "django_tasks_db.DatabaseBackend",
}
PORTAL_TASK_BACKEND = env_str("PORTAL_TASK_BACKEND", "immediate")
if PORTAL_TASK_BACKEND not in TASK_BACKENDS:
    raise ImproperlyConfigured(
        f"PORTAL_TASK_BACKEND must be one of {', '.join(TASK_BACKENDS)}, not {PORTAL_TASK_BACKEND!r}."
    )
TASKS = {"default": {"BACKEND": TASK_BACKENDS[PORTAL_TASK_BACKEND]}}

# --- Security ----------------------------------------------------------------------------------

SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT")
# Load balancers probe the health endpoints over plain HTTP and without X-Forwarded-Proto; a
# redirect would read as "down". They carry no personal data and set no cookie.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS")
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD")
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES")
CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES")
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# A refused form is explained on a page with the portal's header and a way back.
CSRF_FAILURE_VIEW = "acknowledgements.errors.csrf_failure"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env_str("DJANGO_SECURE_PROXY_SSL_HEADER"):
    SECURE_PROXY_SSL_HEADER = (env_str("DJANGO_SECURE_PROXY_SSL_HEADER"), "https")

SECURE_CSP = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'"],
    "connect-src": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
    "base-uri": ["'none'"],
    "object-src": ["'none'"],
}

DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("PORTAL_MAX_REQUEST_BYTES", 2 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = DATA_UPLOAD_MAX_MEMORY_SIZE

# --- Logging -----------------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "acknowledgements.request_log.RequestIdLogFilter"}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "acknowledgements.request_log.JsonLineFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request_id"],
            "formatter": "json" if env_str("PORTAL_LOG_FORMAT") == "json" else "text",
        }
    },
    "root": {"handlers": ["console"], "level": env_str("PORTAL_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.server": {"level": "WARNING"},
        "weasyprint.progress": {"level": "WARNING"},
        "fontTools": {"level": "WARNING"},
    },
}

# --- The portal --------------------------------------------------------------------------------

PORTAL_COMPANY_NAME = env_str("PORTAL_COMPANY_NAME", "Voipkonnec")
PORTAL_BASE_URL = env_str("PORTAL_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
PORTAL_OPEN_SIGNUP = env_bool("PORTAL_OPEN_SIGNUP")
PORTAL_COMPLIANCE_EMAIL = env_str("PORTAL_COMPLIANCE_EMAIL", "compliance@voipkonnec.com")
# Addresses of reverse proxies whose X-Forwarded-For is believed; every other client's
# forwarded header is ignored and the socket address is recorded.
PORTAL_TRUSTED_PROXIES = env_list("PORTAL_TRUSTED_PROXIES")
# Signing needs a sign-in (or re-authentication) at most this many minutes old: a stronger
# link between the signature and the person.
PORTAL_SIGNING_REAUTH_MINUTES = env_int("PORTAL_SIGNING_REAUTH_MINUTES", 30)
# Policy administrators and auditors must set up a second factor before anything else.
PORTAL_REQUIRE_MFA_FOR_STAFF = env_bool("PORTAL_REQUIRE_MFA_FOR_STAFF")
# The raw IP address and user agent behind each ledger entry are kept this many days, then
# removed by `manage.py redact_client_details` (the ledger keeps only their salted SHA-256).
# Empty or 0 keeps them for as long as the ledger.
# Finished exports hold personal data: `manage.py tidy_exports` deletes them after this long.
PORTAL_EXPORT_RETENTION_DAYS = env_int("PORTAL_EXPORT_RETENTION_DAYS", 7)
PORTAL_CLIENT_DETAILS_RETENTION_DAYS = env_int("PORTAL_CLIENT_DETAILS_RETENTION_DAYS", 0)
if PORTAL_CLIENT_DETAILS_RETENTION_DAYS < 0:
    raise ImproperlyConfigured(
        "PORTAL_CLIENT_DETAILS_RETENTION_DAYS must be a number of days (0 or empty: keep them)."
    )

# Receipt sealing: PEM paths of the sealing key, its certificate and the root to trust. When
# unset, a local CA is created on first use in PORTAL_SEALING_DIR (outside the repository).
PORTAL_SEALING_KEY = env_str("PORTAL_SEALING_KEY")
PORTAL_SEALING_KEY_PASSWORD = env_str("PORTAL_SEALING_KEY_PASSWORD")
PORTAL_SEALING_CERT = env_str("PORTAL_SEALING_CERT")
PORTAL_SEALING_ROOT = env_str("PORTAL_SEALING_ROOT")
# After rotating to a new root, receipts sealed under the old one must still verify.
PORTAL_SEALING_FORMER_ROOTS = env_list("PORTAL_SEALING_FORMER_ROOTS")
PORTAL_SEALING_DIR = Path(
    env_str("PORTAL_SEALING_DIR") or Path.home() / ".local" / "share" / "aup-portal" / "sealing"
)
# The local CA's root key, never kept in PORTAL_SEALING_DIR (the folder the server signs from):
# the portal reads it only to renew the seal certificate, so it can live offline between
# renewals. Unset: a folder beside PORTAL_SEALING_DIR ("sealing" -> "sealing-root"); empty:
# the root key is not kept at all, and the seal certificate cannot be renewed (rotate the root).
PORTAL_SEALING_ROOT_KEY_DIR: str | None = (
    env_str("PORTAL_SEALING_ROOT_KEY_DIR") if "PORTAL_SEALING_ROOT_KEY_DIR" in os.environ else None
)
PORTAL_TSA_URL = env_str("PORTAL_TSA_URL")

# The ledger's transparency log (evidence/transparency.py): checkpoints are signed with the
# Ed25519 key in PORTAL_LEDGER_KEY (a PEM file), or one created in PORTAL_LEDGER_KEY_DIR on first
# use (apart from the sealing CA, so that rotating the CA never changes the log's key). The
# origin names the log in every checkpoint: set it once, before the first one.
PORTAL_LEDGER_KEY = env_str("PORTAL_LEDGER_KEY")
PORTAL_LEDGER_KEY_DIR = Path(
    env_str("PORTAL_LEDGER_KEY_DIR") or Path.home() / ".local" / "share" / "aup-portal" / "ledger"
)
# Addresses the latest checkpoint is emailed to once a day (manage.py witness_checkpoint).
PORTAL_CHECKPOINT_WITNESSES = env_list("PORTAL_CHECKPOINT_WITNESSES")
PORTAL_LEDGER_ORIGIN = (
    env_str("PORTAL_LEDGER_ORIGIN") or f"{urlsplit(PORTAL_BASE_URL).hostname}/aup-ledger"
)

# Notifications: reminders go out this many days before a due date (each once per person).
PORTAL_REMINDER_DAYS = env_days("PORTAL_REMINDER_DAYS", "7,1")
# A person this many days overdue is reported to their manager (once per due date; a manager
# gets at most one such email a day, listing everyone). Empty: managers are never emailed.
PORTAL_ESCALATE_AFTER_DAYS = (
    env_int("PORTAL_ESCALATE_AFTER_DAYS", 0) if env_str("PORTAL_ESCALATE_AFTER_DAYS") else None
)
if PORTAL_ESCALATE_AFTER_DAYS is not None and PORTAL_ESCALATE_AFTER_DAYS < 0:
    raise ImproperlyConfigured("PORTAL_ESCALATE_AFTER_DAYS must be a whole number of days.")
PORTAL_EMAIL_BATCH_SIZE = env_int("PORTAL_EMAIL_BATCH_SIZE", 500)
PORTAL_EMAIL_MAX_ATTEMPTS = env_int("PORTAL_EMAIL_MAX_ATTEMPTS", 5)
# SMTP connections a batch is sent over at once (each waits on the server between messages).
PORTAL_EMAIL_CONNECTIONS = env_int("PORTAL_EMAIL_CONNECTIONS", 4)
# How long a worker's claim on a batch of emails lasts: past it, the emails it had not handed
# to the server are queued again, and one it had handed without hearing back is listed as
# uncertain (a worker that died), for an administrator to retry.
PORTAL_EMAIL_LEASE_SECONDS = env_int("PORTAL_EMAIL_LEASE_SECONDS", 300)
PORTAL_MAX_RECEIPT_UPLOAD_BYTES = env_int("PORTAL_MAX_RECEIPT_UPLOAD_BYTES", 5 * 1024 * 1024)
# Receipts one client may upload to /verify/ a minute; more get a 429 (0: no limit).
PORTAL_VERIFY_UPLOADS_PER_MINUTE = env_int("PORTAL_VERIFY_UPLOADS_PER_MINUTE", 10)
# Largest people CSV an administrator may upload (100,000 people take about 12 MB).
PORTAL_MAX_IMPORT_BYTES = env_int("PORTAL_MAX_IMPORT_BYTES", 50 * 1024 * 1024)
# Requests a read token may make to the API (/api/v1/) a minute; more get a 429 (0: no limit).
PORTAL_API_REQUESTS_PER_MINUTE = env_int("PORTAL_API_REQUESTS_PER_MINUTE", 120)
# Webhooks go to public addresses only, so that one cannot probe the internal network; 1 also
# allows private, loopback and link-local ones (a receiver on the same network, tests).
PORTAL_WEBHOOK_ALLOW_PRIVATE = env_bool("PORTAL_WEBHOOK_ALLOW_PRIVATE")
# How long a delivery waits to connect and for the receiver's answer, in all.
PORTAL_WEBHOOK_TIMEOUT_SECONDS = env_int("PORTAL_WEBHOOK_TIMEOUT_SECONDS", 5)
