from __future__ import annotations

from django.apps import AppConfig


class DjnotesConfig(AppConfig):
    name = "djnotes"
