"""Kafka errors told apart and put in words: the text of a librdkafka error and the
:class:`~yadtq.exceptions.BrokerUnavailable` a client error becomes at the transport's edge."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException

from ..exceptions import BrokerUnavailable

#: Errors a topic created moments ago answers with until its leaders are elected.
_LEADERSHIP_ERRORS = frozenset({KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                                KafkaError.UNKNOWN_TOPIC_OR_PART})


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        err = exc.args[0]
        return f"{err.name()}: {err.str()}"
    return str(exc)


#: Errors that mean no broker of the cluster could be reached at all.
_UNREACHABLE_ERRORS = frozenset({KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE,
                                 KafkaError._TIMED_OUT, KafkaError._TIMED_OUT_QUEUE})


def unavailable(servers: str, doing: str, exc: KafkaException) -> BrokerUnavailable:
    """The error to raise for ``exc`` met while ``doing`` something: "unreachable" when no
    broker answered (rather than, say, "cannot create topic" for a cluster that is down)."""
    err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
    if err is not None and err.code() in _UNREACHABLE_ERRORS:
        return BrokerUnavailable(f"Kafka broker unreachable at {servers} ({_error_text(exc)})")
    return BrokerUnavailable(f"cannot {doing}: {_error_text(exc)}")
