"""A module without a YADTQ app, for the CLI's bad ``-A`` tests."""

from __future__ import annotations

answer = 42
