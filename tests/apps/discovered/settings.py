"""Settings read by ``app.config_from_object``: lower-case names are settings."""

from __future__ import annotations

import os

_suffix = os.environ.get("DISCOVERED_QUEUE_SUFFIX", "")  # tests keep their queues apart
task_routes = {
    "tests.apps.discovered.tasks.ping": f"fast{_suffix}",
    "tests.apps.discovered.*.tasks.slow_*": f"slow{_suffix}",
}
result_expires = 3600
retry_delay = os.environ.get("DISCOVERED_RETRY_DELAY", "0.5")
