"""``Task.check_arguments`` remembers the call shapes that bind, and only those."""

from __future__ import annotations

import pytest

from yadtq import YADTQ


def test_a_shape_that_bound_is_remembered_and_others_are_still_refused() -> None:
    app = YADTQ("shapes", broker="memory://", backend="memory://")

    @app.task
    def add(x: int, y: int = 0) -> int:
        return x + y

    add.check_arguments((1, 2), {})
    add.check_arguments((1,), {"y": 2})
    assert add._fitting_shapes == {(2, ()), (1, ("y",))}
    for args, kwargs in (((1, 2, 3), {}), ((), {}), ((1,), {"z": 2}), ((1, 2), {"y": 3})):
        with pytest.raises(TypeError):
            add.check_arguments(args, kwargs)
    assert add._fitting_shapes == {(2, ()), (1, ("y",))}


def test_a_bound_task_counts_itself_first() -> None:
    app = YADTQ("shapes", broker="memory://", backend="memory://")

    @app.task(bind=True)
    def tick(self: object, n: int) -> int:
        return n

    tick.check_arguments((1,), {})
    with pytest.raises(TypeError):
        tick.check_arguments((1, 2), {})
