from __future__ import annotations

import pytest

from yadtq.exceptions import ConfigurationError
from yadtq.settings import DEFAULT_URL, load_settings


def test_defaults_are_the_embedded_transport() -> None:
    s = load_settings(environ={})
    assert s.broker_url == DEFAULT_URL and s.backend_url == DEFAULT_URL
    assert s.max_retries == 3 and s.result_expires == 86400


def test_environment_is_read_and_typed() -> None:
    s = load_settings(environ={"YADTQ_BROKER_URL": "memory://", "YADTQ_PARTITIONS": "4",
                               "YADTQ_RESULT_EXPIRES": "60", "YADTQ_EAGER": "yes",
                               "YADTQ_BROKER_OPTIONS": '{"linger.ms": 1}'})
    assert s.broker_url == "memory://" and s.partitions == 4 and s.result_expires == 60.0
    assert s.eager is True and s.broker_options == {"linger.ms": 1}


def test_explicit_arguments_win_over_environment() -> None:
    s = load_settings(broker="memory://", partitions=2,
                      environ={"YADTQ_BROKER_URL": "sqlite:///x.db", "YADTQ_PARTITIONS": "4"})
    assert s.broker_url == "memory://" and s.partitions == 2


def test_seed_shortcuts() -> None:
    s = load_settings(broker_ip="10.0.0.5", backend_ip="10.0.0.6", environ={})
    assert s.broker_url == "kafka://10.0.0.5:9092"
    assert s.backend_url == "redis://10.0.0.6:6379/0"


@pytest.mark.parametrize("kwargs, environ", [
    ({"nonsense": 1}, {}),
    ({}, {"YADTQ_PARTITIONS": "many"}),
    ({"partitions": 0}, {}),
    ({"broker": "not-a-url"}, {}),
    ({}, {"YADTQ_BROKER_OPTIONS": "[1]"}),
])
def test_bad_settings_raise_configuration_error(kwargs: dict, environ: dict) -> None:
    with pytest.raises(ConfigurationError):
        load_settings(environ=environ, **kwargs)
