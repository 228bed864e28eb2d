"""The project's yadtq app, configured from Django's settings."""

from __future__ import annotations

import os

from yadtq import YADTQ

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djproj.settings")

app = YADTQ("djproj")
app.config_from_object("django.conf:settings", namespace="YADTQ")
app.autodiscover_tasks()
