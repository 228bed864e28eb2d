"""Django settings of the test project; yadtq reads the ``YADTQ_*`` names."""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "test-only-not-secret"
DEBUG = False
ALLOWED_HOSTS: list[str] = []
INSTALLED_APPS = ["djnotes"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJPROJ_DATABASE", str(BASE_DIR / "db.sqlite3")),
    },
}
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

_QUEUE = os.environ.get("DJPROJ_QUEUE", f"sqlite:///{BASE_DIR / 'queue.db'}")
YADTQ_BROKER_URL = _QUEUE
YADTQ_BACKEND_URL = _QUEUE
YADTQ_DEFAULT_QUEUE = "djnotes"
YADTQ_RESULT_EXPIRES = 3600
