"""The librdkafka settings yadtq gives its Kafka clients (no server needed: only the
configuration is built)."""

from __future__ import annotations

from typing import Any

from yadtq.settings import load_settings
from yadtq.transports.kafka import KafkaBroker

URL = "kafka://127.0.0.1:1"


def _broker(**options: Any) -> KafkaBroker:
    return KafkaBroker(URL, load_settings(environ={}, broker=URL, backend="memory://",
                                          broker_options=options))


def test_the_producer_keeps_one_request_in_flight_so_a_failed_batch_is_never_counted_written() -> None:
    conf = _broker().config("producer")
    assert conf["enable.idempotence"] is True and conf["acks"] == "all"
    assert conf["max.in.flight.requests.per.connection"] == 1
    assert "max.in.flight.requests.per.connection" not in _broker().config("consumer")


def test_broker_options_may_raise_the_producers_requests_in_flight() -> None:
    conf = _broker(**{"max.in.flight.requests.per.connection": 5}).config("producer")
    assert conf["max.in.flight.requests.per.connection"] == 5
