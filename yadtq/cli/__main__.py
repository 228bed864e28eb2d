"""``python -m yadtq.cli``: the ``yadtq`` command."""

from __future__ import annotations

from . import main

if __name__ == "__main__":
    main(prog_name="yadtq")
