"""Tasks of the test app: found by ``app.autodiscover_tasks()``."""

from __future__ import annotations

from djproj.yadtq_app import app

from .models import Note, Reading


@app.task(max_retries=0)
def read_note(note_id: int) -> str:
    """The text of a note, as the worker sees the database."""
    Reading.objects.create(note_id=note_id)
    return str(Note.objects.get(pk=note_id).text)
