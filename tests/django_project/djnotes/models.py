from __future__ import annotations

from django.db import models


class Note(models.Model):
    text = models.CharField(max_length=200)


class Reading(models.Model):
    """One row per run of ``read_note``: a task that ran leaves a trace here."""

    note_id = models.BigIntegerField()
