"""The test project's package: importing it loads its yadtq app (as Celery's Django layout does)."""

from __future__ import annotations

from .yadtq_app import app

__all__ = ["app"]
