"""Outage noise (issue 8 case 17): connection errors become one 'lost' and one 'restored' line."""

from __future__ import annotations

import json
import logging

import pytest
from confluent_kafka import KafkaError

from yadtq.transports.kafka_link import KafkaLink

LINK_LOGGER = "yadtq.transports.kafka_link"


def _error(code: int, text: str = "Connect failed: Connection refused") -> KafkaError:
    return KafkaError(code, text)


def _stats(state: str) -> str:
    return json.dumps({"brokers": {"127.0.0.1:9092/1": {"state": state, "nodeid": 1}}})


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_an_outage_gives_one_warning_when_lost_and_one_when_back(caplog: pytest.LogCaptureFixture) -> None:
    link = KafkaLink("127.0.0.1:9092")
    others: list[KafkaError] = []
    producer = link.error_cb("producer", others.append)
    consumer = link.error_cb("consumer of q", others.append)
    producer_stats, consumer_stats = link.stats_cb("producer"), link.stats_cb("consumer of q")
    producer_stats(_stats("UP"))  # connected: from now on a failure is a loss
    caplog.set_level(logging.DEBUG)
    for _ in range(100):  # librdkafka's per-attempt reports during a few seconds' outage
        producer(_error(KafkaError._TRANSPORT))
        consumer(_error(KafkaError._TRANSPORT))
    producer(_error(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    consumer(_error(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    producer_stats(_stats("DOWN"))
    assert not link.up and others == []
    producer_stats(_stats("UP"))
    assert not link.up  # the consumer has not reconnected yet
    consumer_stats(_stats("UP"))
    assert link.up
    warnings = _warnings(caplog)
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("lost the connection to Kafka at 127.0.0.1:9092")
    assert warnings[1].startswith("connection to Kafka at 127.0.0.1:9092 restored")
    assert (link.losses, link.restores) == (1, 1)


def test_other_errors_are_passed_on_and_a_closed_client_is_forgotten(
        caplog: pytest.LogCaptureFixture) -> None:
    link = KafkaLink("k:1")
    link.stats_cb("consumer of q")(_stats("UP"))
    others: list[KafkaError] = []
    callback = link.error_cb("consumer of q", others.append)
    callback(_error(KafkaError.TOPIC_AUTHORIZATION_FAILED, "not allowed"))
    assert [e.code() for e in others] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    callback(_error(KafkaError._ALL_BROKERS_DOWN))
    assert not link.up
    link.forget("consumer of q")
    assert link.up and len(_warnings(caplog)) == 1  # lost, then silently forgotten


def test_a_link_never_up_is_not_reported_lost_at_warning(caplog: pytest.LogCaptureFixture) -> None:
    """A client that cannot reach Kafka at start gets its error from the call; the link
    adds no warning line (one clear line in the CLI)."""
    link = KafkaLink("k:1")
    callback = link.error_cb("producer", lambda err: None)
    caplog.set_level(logging.INFO)
    callback(_error(KafkaError._ALL_BROKERS_DOWN))
    assert not link.up and _warnings(caplog) == []
    assert [r.getMessage() for r in caplog.records] == [
        "cannot reach Kafka at k:1 (Connect failed: Connection refused); retrying"]


def test_librdkafka_connection_log_lines_go_to_debug(caplog: pytest.LogCaptureFixture) -> None:
    sink = KafkaLink("k:1").log_sink("producer")
    caplog.set_level(logging.INFO, logger="yadtq.transports.kafka.librdkafka")
    for _ in range(50):
        sink.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1", "Connect failed")
    sink.log(logging.WARNING, "%s [%s] %s", "CONFWARN", "rdkafka#producer-1", "odd setting")
    assert [r.getMessage() for r in caplog.records] == ["CONFWARN [rdkafka#producer-1] odd setting"]


def test_a_loss_reported_by_a_client_without_statistics_ends_when_another_is_back(
        caplog: pytest.LogCaptureFixture) -> None:
    """An admin client has no statistics to say its link is back: the loss it reported
    ends when a client that has them is connected again (else never "restored")."""
    link = KafkaLink("k:1")
    producer_stats = link.stats_cb("producer")
    producer_stats(_stats("UP"))
    link.error_cb("admin", lambda err: None)(_error(KafkaError._ALL_BROKERS_DOWN))
    link.error_cb("producer", lambda err: None)(_error(KafkaError._ALL_BROKERS_DOWN))
    assert not link.up
    producer_stats(_stats("UP"))
    assert link.up and (link.losses, link.restores) == (1, 1)
    assert len(_warnings(caplog)) == 2


@pytest.mark.timeout(60)
def test_an_unreachable_cluster_is_called_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    # Not "cannot create topic": nothing answered at all (issue 12, a newcomer's report).
    from yadtq.exceptions import BrokerUnavailable
    from yadtq.settings import load_settings
    from yadtq.transports import kafka, kafka_topics

    monkeypatch.setattr(kafka_topics, "ADMIN_TIMEOUT", 1.0)
    url = "kafka://127.0.0.1:1"
    broker = kafka.KafkaBroker(url, load_settings(environ={}, broker=url, backend="memory://"))
    with pytest.raises(BrokerUnavailable) as info:
        broker.publish([kafka.Message("default", b"x")])
    assert str(info.value).startswith("Kafka broker unreachable at 127.0.0.1:1 (")
    assert "create topic" not in str(info.value)
