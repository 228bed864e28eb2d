"""The pure parts of the canvas: building steps, starting them, and follow-ups of outcomes."""

from __future__ import annotations

import time
from typing import Any

import pytest

from yadtq import YADTQ, ConfigurationError, chain, chord, group
from yadtq.canvas.followups import CHORD_ERROR, FollowUps
from yadtq.canvas.steps import (
    CHAIN,
    CHORD,
    GATHER,
    GROUP,
    LINK,
    MEMBER,
    NO_VALUE,
    REST,
    SIG,
    compile_canvas,
    start,
    strip,
    walk,
)
from yadtq.envelope import Envelope, decode, encode, pack
from yadtq.states import FAILED, RETRYING, SUCCESS
from yadtq.transports.base import ErrorInfo
from yadtq.worker.executor import Outcome


@pytest.fixture
def app() -> YADTQ:
    return YADTQ("unit", broker="memory://", backend="memory://")


@pytest.fixture
def tasks(app: YADTQ) -> Any:
    class T:
        @staticmethod
        @app.task
        def add(x: int, y: int) -> int:
            return x + y

        @staticmethod
        @app.task(queue="special")
        def tsum(values: list[int]) -> int:
            return sum(values)

    return T


def test_signature_options_immutability_and_local_call(tasks: Any) -> None:
    sig = tasks.add.s(2)
    assert sig(3) == 5  # partial arguments come first, as a parent's result does
    assert sig.set(countdown=5).options == {"countdown": 5} and sig.options == {}
    assert tasks.add.si(1, 2).clone((100,)).args == (1, 2)
    with pytest.raises(ConfigurationError, match="unknown option"):
        sig.set(colour="red")
    assert isinstance(tasks.add.s(1, 1) | tasks.add.s(2), chain)


def test_a_chain_starts_with_its_first_step_carrying_the_rest(app: YADTQ, tasks: Any) -> None:
    step = compile_canvas(chain(tasks.add.s(2, 3), tasks.add.s(10), tasks.tsum.si([1])), app)
    assert step["t"] == CHAIN and [s["t"] for s in step["steps"]] == [SIG, SIG, SIG]
    (first,) = start(strip(step), parent_id=None, root_id=None)
    assert first.args == (2, 3) and first.root_id == first.id and first.parent_id is None
    assert [s["id"] for s in first.canvas[REST]] == [s["id"] for s in step["steps"][1:]]
    (nxt,) = start(first.canvas[REST][0], 5, parent_id=first.id, root_id=first.root_id,
                   rest=first.canvas[REST][1:])
    assert nxt.args == (5, 10) and nxt.parent_id == first.id and nxt.root_id == first.id
    (last,) = start(nxt.canvas[REST][0], 15, parent_id=nxt.id, root_id=first.id)
    assert last.args == ([1],) and last.queue == "special"  # .si ignores the result


def test_a_group_followed_by_a_step_becomes_a_chord(app: YADTQ, tasks: Any) -> None:
    step = compile_canvas(chain(tasks.add.s(1, 1), group(tasks.add.s(1), tasks.add.s(2)),
                                tasks.tsum.s()), app)
    assert [s["t"] for s in step["steps"]] == [SIG, CHORD]
    chord_step = step["steps"][1]
    members = chord_step["members"]
    assert [m[MEMBER]["index"] for m in members] == [0, 1]
    assert all(m[MEMBER]["id"] == chord_step["id"] for m in members)
    assert members[0][MEMBER]["fail"]["id"] == chord_step["body"]["id"]
    envelopes = start(strip(chord_step), 2, parent_id="p", root_id="r")
    assert [e.args for e in envelopes] == [(2, 1), (2, 2)]
    assert "body" not in strip(chord_step)


def test_nested_chords_carry_the_outer_membership_to_the_inner_callback(app: YADTQ,
                                                                       tasks: Any) -> None:
    inner = chord([tasks.add.s(1, 1)], tasks.tsum.s())
    step = compile_canvas(chord([inner, tasks.add.s(2, 2)], tasks.tsum.s()), app)
    inner_step = step["members"][0]
    assert inner_step["t"] == CHORD
    assert inner_step["body"][MEMBER]["id"] == step["id"]
    # The inner member's failure target (the inner callback) knows the outer chord.
    assert inner_step["members"][0][MEMBER]["fail"][MEMBER]["id"] == step["id"]


def test_bad_canvases_are_refused_when_built(app: YADTQ, tasks: Any) -> None:
    with pytest.raises(ConfigurationError, match="empty chain"):
        compile_canvas(chain(), app)
    with pytest.raises(ConfigurationError, match="must start with a task"):
        compile_canvas(chord([tasks.add.s(1, 1)], group(tasks.tsum.s())), app)
    with pytest.raises(ConfigurationError, match="signatures"):
        group([1, 2])
    with pytest.raises(ConfigurationError, match="link on a group"):
        group(tasks.add.s(1, 1)).apply_async(link=tasks.tsum.s())


def test_the_canvas_field_travels_and_plain_messages_stay_as_they_were() -> None:
    plain = Envelope(id="a", task="t")
    assert b"canvas" not in encode(plain)
    rich = Envelope(id="b", task="t", canvas={REST: [{"t": SIG, "id": "c"}], GATHER: "g"})
    assert decode(encode(rich, "key"), "key").canvas == rich.canvas


def outcome(task_id: str, state: str, value: Any = None) -> Outcome:
    now = time.time()
    error = ErrorInfo("builtins.ValueError", "boom", ["boom"]) if state == FAILED else None
    return Outcome(task_id, state, now, now, result=pack(value) if state == SUCCESS else None,
                   error=error)


def test_success_schedules_the_next_step_and_links_due_now(app: YADTQ, tasks: Any) -> None:
    step = compile_canvas(chain(tasks.add.s(1, 2), tasks.add.s(3)), app,
                          link=tasks.tsum.s(), link_error=tasks.tsum.s())
    (first,) = start(strip(step), parent_id=None, root_id=None)
    follow = FollowUps(app)
    follow.add(first, outcome(first.id, SUCCESS, 3))
    assert follow.changes == [] and follow.joins == []
    (scheduled,) = follow.scheduled
    nxt = decode(scheduled.message.body)
    assert nxt.id == step["steps"][1]["id"] and nxt.args == (3, 3) and nxt.parent_id == first.id
    assert scheduled.due <= time.time()
    assert nxt.canvas[LINK][0]["task"] == tasks.tsum.name  # the chain's link rides to the end


def test_retrying_sets_nothing_off(app: YADTQ, tasks: Any) -> None:
    step = compile_canvas(chain(tasks.add.s(1, 2), tasks.add.s(3)), app)
    (first,) = start(strip(step), parent_id=None, root_id=None)
    follow = FollowUps(app)
    follow.add(first, outcome(first.id, RETRYING))
    assert (follow.changes, follow.scheduled, follow.joins) == ([], [], [])


def test_failure_fails_the_rest_of_the_chain_calls_errbacks_and_fails_chords(
        app: YADTQ, tasks: Any) -> None:
    step = compile_canvas(chain(tasks.add.s(1, 2), group(tasks.add.s(1), tasks.add.s(2)),
                                tasks.tsum.s()), app, link_error=tasks.tsum.s())
    (first,) = start(strip(step), parent_id=None, root_id=None)
    follow = FollowUps(app)
    follow.add(first, outcome(first.id, FAILED))
    (errback,) = follow.scheduled
    assert decode(errback.message.body).args == (first.id,)  # the failed task's id first
    chord_step = step["steps"][1]
    member_ids = [m["id"] for m in chord_step["members"]]
    failed: dict[str, Any] = {}
    for change in follow.changes:  # the first change of a task is the one a backend keeps
        failed.setdefault(change.task_id, change.error)
    assert set(member_ids) <= set(failed)
    assert failed[member_ids[0]] is not None and failed[member_ids[0]].type == "builtins.ValueError"
    callback_error = failed[chord_step["body"]["id"]]
    assert callback_error is not None and callback_error.type == CHORD_ERROR
    assert member_ids[0] in callback_error.message
    assert {j.chord_id for j in follow.joins} == {chord_step["id"]}


def test_walk_and_no_value(app: YADTQ, tasks: Any) -> None:
    step = compile_canvas(group(chain(tasks.add.s(1, 1), tasks.add.s(2)), tasks.add.s(3, 3)), app)
    assert step["t"] == GROUP and len(list(walk(step))) == 3
    envelopes = start(step, NO_VALUE, parent_id=None, root_id=None)
    assert [e.args for e in envelopes] == [(1, 1), (3, 3)]
    assert {e.parent_id for e in envelopes} == {step["id"]}


def test_a_malformed_canvas_loses_its_follow_ups_not_the_outcome(app: YADTQ) -> None:
    follow = FollowUps(app)
    broken = Envelope(id="x", task="t", canvas={REST: [{"t": SIG}], MEMBER: {"id": "c"}})
    follow.add(broken, outcome("x", SUCCESS, 1))
    assert (follow.changes, follow.scheduled, follow.joins) == ([], [], [])
