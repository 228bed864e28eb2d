"""Settings of the example project. yadtq reads the ``YADTQ_*`` names."""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("SHOP_SECRET_KEY", "example-only-not-secret")
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["orders"]
ROOT_URLCONF = "shop.urls"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SHOP_DATABASE", str(BASE_DIR / "shop.sqlite3")),
    },
}
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# yadtq: the embedded SQLite transport next to the project unless the environment names
# Kafka and Redis (YADTQ_BROKER_URL=kafka://..., YADTQ_BACKEND_URL=redis://...).
_EMBEDDED = f"sqlite:///{BASE_DIR / 'yadtq.db'}"
YADTQ_BROKER_URL = os.environ.get("YADTQ_BROKER_URL", _EMBEDDED)
YADTQ_BACKEND_URL = os.environ.get("YADTQ_BACKEND_URL", _EMBEDDED)
YADTQ_RESULT_EXPIRES = 7 * 24 * 3600
YADTQ_TASK_ROUTES = {"orders.tasks.*": "orders"}
