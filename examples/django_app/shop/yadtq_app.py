"""The project's yadtq app: settings from Django's ``YADTQ_*`` settings, tasks from each
installed app's ``tasks`` module."""

from __future__ import annotations

import os

from yadtq import YADTQ

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

app = YADTQ("shop")
app.config_from_object("django.conf:settings", namespace="YADTQ")
app.autodiscover_tasks()
