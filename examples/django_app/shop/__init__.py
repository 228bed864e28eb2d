"""The example project: importing it loads its yadtq app, so ``yadtq worker -A shop`` works."""

from __future__ import annotations

from .yadtq_app import app

__all__ = ["app"]
