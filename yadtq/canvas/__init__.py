"""Composing work (DESIGN.md section 10): signatures, chains, groups, chords.

``signature.py`` describes a canvas; ``steps.py`` fixes it as data with every
task id chosen up front; ``send.py`` stores its groups and sends its first
tasks; ``followups.py`` is what the worker's recorder stores with each outcome
(next chain step, callbacks, chord counts); ``group_result.py`` reads groups back.
"""

from __future__ import annotations

from .group_result import GroupResult
from .signature import Signature, chain, chord, group

__all__ = ["GroupResult", "Signature", "chain", "chord", "group"]
