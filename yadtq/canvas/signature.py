"""What a user composes: :class:`Signature`, :class:`chain`, :class:`group`, :class:`chord`.

These are plain descriptions; nothing is sent until ``apply_async``/``delay``,
which hands them to :mod:`yadtq.canvas.send`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Generic, Optional, TypeVar, Union

from ..exceptions import ConfigurationError
from ..priority import check_priority

if TYPE_CHECKING:
    from ..app import YADTQ
    from ..result import AsyncResult
    from ..task import Task
    from .group_result import GroupResult

R = TypeVar("R")

#: Options a signature may carry (``.set(...)``, ``apply_async(...)``).
APPLY_OPTIONS = frozenset({
    "countdown", "eta", "expires", "task_id", "queue", "key", "max_retries", "time_limit",
    "priority", "link", "link_error",
})
#: Options only a canvas (not a plain send) knows how to carry.
CANVAS_OPTIONS = frozenset({"link", "link_error"})
#: The built-in task that runs one chunk of ``task.chunks`` (``builtins.py``).
CHUNK_TASK = "yadtq.chunk"


def check_options(owner: str, options: dict[str, Any]) -> None:
    """Raise ``ConfigurationError`` for options no signature knows."""
    unknown = sorted(set(options) - APPLY_OPTIONS)
    if unknown:
        raise ConfigurationError(f"{owner}: unknown option(s) {', '.join(unknown)} "
                                 f"(known: {', '.join(sorted(APPLY_OPTIONS))})")
    if options.get("priority") is not None:
        check_priority(options["priority"], owner)


class Signature(Generic[R]):
    """A task with (some of) its arguments and options, to be sent later or composed.

    ``add.s(2)`` takes the parent's result as its first argument when it follows
    another task in a chain (``add.si(2, 3)`` does not: it is immutable).
    """

    def __init__(self, task: Task[Any, R], args: tuple[Any, ...] = (),
                 kwargs: Optional[dict[str, Any]] = None, options: Optional[dict[str, Any]] = None,
                 *, immutable: bool = False) -> None:
        self.task = task
        self.args = tuple(args)
        self.kwargs = dict(kwargs) if kwargs else {}
        self.options = dict(options) if options else {}
        if self.options:
            check_options(f"signature of {task.name}", self.options)
        self.immutable = immutable

    @property
    def name(self) -> str:
        return self.task.name

    @property
    def app(self) -> YADTQ:
        return self.task.app

    def __repr__(self) -> str:
        params = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.task.name}{'.si' if self.immutable else ''}({', '.join(params)})"

    def clone(self, args: Iterable[Any] = (), kwargs: Optional[dict[str, Any]] = None,
              **options: Any) -> Signature[R]:
        """A copy with more options and with ``args`` put before its own arguments (as
        a parent's result is), ``kwargs`` merged into its own. Immutable ones keep theirs."""
        if self.immutable:
            args, kwargs = (), None
        return Signature(self.task, (*args, *self.args), {**self.kwargs, **(kwargs or {})},
                         {**self.options, **options}, immutable=self.immutable)

    def set(self, **options: Any) -> Signature[R]:
        """A copy with more ``apply_async`` options (``countdown``, ``queue``, ``priority``,
        ``link``, ``link_error``, ...)."""
        return self.clone(**options)

    def __or__(self, other: Canvas) -> chain:
        return chain(self, other)

    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult[R]:
        """Send it, with ``args``/``kwargs`` added to its own."""
        return self.apply_async(args, kwargs)

    def apply_async(self, args: Iterable[Any] = (), kwargs: Optional[dict[str, Any]] = None,
                    **options: Any) -> AsyncResult[R]:
        """Send it; ``link``/``link_error`` callbacks go with it (see docs/canvas.md)."""
        sig = self.clone(args, kwargs, **options)
        if not CANVAS_OPTIONS & set(sig.options):
            return sig.task.apply_async(sig.args, sig.kwargs, **sig.options)
        return sig.app.send_canvas(sig)  # type: ignore[return-value]

    def __call__(self, *args: Any, **kwargs: Any) -> R:
        """Run the task here, now, with ``args`` before its own arguments."""
        sig = self.clone(args, kwargs)
        return sig.task.run(*sig.args, **sig.kwargs)


class _Composite:
    """What chain, group and chord share: sending and chaining with ``|``."""

    def _app(self) -> YADTQ:
        for sig in self.signatures():
            return sig.app
        raise ConfigurationError(f"an empty {type(self).__name__} has no app to send it with")

    def signatures(self) -> Iterator[Signature[Any]]:
        """Every signature inside, depth first."""
        raise NotImplementedError

    def __or__(self, other: Canvas) -> chain:
        return chain(self, other)  # type: ignore[arg-type]


def _items(owner: str, tasks: tuple[Any, ...]) -> list[Canvas]:
    if len(tasks) == 1 and not isinstance(tasks[0], CANVAS_TYPES):
        tasks = tuple(tasks[0])  # one iterable (list, generator) of signatures
    items = list(tasks)
    for item in items:
        if not isinstance(item, CANVAS_TYPES):
            raise ConfigurationError(f"{owner} takes signatures (task.s(...)), not {item!r}")
    return items


class chain(_Composite):
    """Run signatures one after the other, each getting the previous result first.

    ``chain(add.s(2, 3), mul.s(10)).apply_async()`` returns the last task's
    ``AsyncResult`` (``.parent`` is the one before). It stops at the first failure,
    and that failure is the chain's.
    """

    def __init__(self, *tasks: Any) -> None:
        self.tasks = _items("chain", tasks)

    def __repr__(self) -> str:
        return " | ".join(repr(t) for t in self.tasks)

    def signatures(self) -> Iterator[Signature[Any]]:
        for item in self.tasks:
            yield from _signatures(item)

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)

    def apply_async(self, args: Iterable[Any] = (), kwargs: Optional[dict[str, Any]] = None,
                    **options: Any) -> Any:
        """Send the first step (with ``args``/``kwargs`` added); the rest follow in turn.

        Options: ``link`` (called with the chain's result), ``link_error`` (called with
        the id of the step that failed), ``countdown``/``eta`` (for the first step).
        """
        return self._app().send_canvas(self, args, kwargs, options)


class group(_Composite):
    """Run signatures in parallel; ``apply_async`` returns a :class:`GroupResult`."""

    def __init__(self, *tasks: Any) -> None:
        self.tasks = _items("group", tasks)

    def __repr__(self) -> str:
        return f"group([{', '.join(repr(t) for t in self.tasks)}])"

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self) -> Iterator[Canvas]:
        return iter(self.tasks)

    def signatures(self) -> Iterator[Signature[Any]]:
        for item in self.tasks:
            yield from _signatures(item)

    def delay(self, *args: Any, **kwargs: Any) -> GroupResult:
        return self.apply_async(args, kwargs)

    def apply_async(self, args: Iterable[Any] = (), kwargs: Optional[dict[str, Any]] = None,
                    **options: Any) -> GroupResult:
        """Send every member (each with ``args``/``kwargs`` added)."""
        return self._app().send_canvas(self, args, kwargs, options)  # type: ignore[return-value]


class chord(_Composite):
    """A group (the header) and a callback (the body) that gets the list of their results.

    The members are counted in the backend, in the same atomic step that records each
    one's outcome: the callback runs exactly once, however workers crash. A failed
    member fails the chord with :class:`yadtq.ChordError`.
    """

    def __init__(self, header: Any, body: Optional[Canvas] = None) -> None:
        self.header = group(header) if not isinstance(header, group) else header
        self.body = body

    def __call__(self, body: Canvas) -> AsyncResult[Any]:
        """``chord(header)(body)``: send it with this body."""
        return chord(self.header, body).apply_async()  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"chord({self.header!r}, {self.body!r})"

    def signatures(self) -> Iterator[Signature[Any]]:
        yield from self.header.signatures()
        if self.body is not None:
            yield from _signatures(self.body)

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)

    def apply_async(self, args: Iterable[Any] = (), kwargs: Optional[dict[str, Any]] = None,
                    **options: Any) -> Any:
        """Send the header's members; returns the callback's ``AsyncResult``."""
        if self.body is None:
            raise ConfigurationError("chord has no callback: chord(header, callback)")
        return self._app().send_canvas(self, args, kwargs, options)


Canvas = Union[Signature[Any], chain, group, chord]
CANVAS_TYPES = (Signature, chain, group, chord)


def _signatures(item: Canvas) -> Iterator[Signature[Any]]:
    if isinstance(item, Signature):
        yield item
    else:
        yield from item.signatures()
