"""Every ``yadtq`` command but ``worker``, in the order ``--help`` lists them.

Imported by the group (``__init__.py``) only when a command other than ``worker``
runs or the commands are listed: a worker process then never loads rich, the
dashboard, the shell and the other commands' modules (a few MB of its idle RSS).
"""

from __future__ import annotations

from .bench import bench
from .dashboard import dashboard
from .dlq import dlq
from .inspection import inspect_command, tasks_command
from .monitor import monitor
from .operate import control, retry
from .revoke import revoke
from .schedule import schedule
from .shell import shell
from .submit import submit
from .tasks import purge, result, status

COMMANDS = (submit, status, result, revoke, purge, monitor, inspect_command, tasks_command, schedule,
            retry, dlq, control, dashboard, bench, shell)
