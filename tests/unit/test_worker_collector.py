"""``yadtq worker`` tunes the garbage collector of its own process (worker/collector.py)."""

from __future__ import annotations

import subprocess
import sys

from yadtq.worker import collector


def test_tuning_freezes_what_exists_and_collects_the_young_less_often() -> None:
    # In a process of its own: the collector's settings are global.
    code = ("import gc; from yadtq.worker.collector import tune_for_worker; "
            "before = gc.get_freeze_count(); tune_for_worker(); "
            "print(before, gc.get_freeze_count(), *gc.get_threshold())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         check=True).stdout.split()
    before, frozen, young, middle, old = map(int, out)
    assert before == 0 and frozen > 1000  # the modules and what they built
    assert (young, middle, old) == (collector.YOUNG_THRESHOLD, collector.OLDER_THRESHOLD,
                                    collector.OLDER_THRESHOLD)
