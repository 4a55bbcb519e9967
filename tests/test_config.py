"""Settings from the environment: malformed values stop the server at start-up."""

from __future__ import annotations

import pytest

from pryvrt.config import ConfigError, Settings


def test_the_log_level_is_a_setting_checked_at_start() -> None:
    assert Settings.from_env({"PRYVRT_LOG_LEVEL": "debug"}).log_level == "DEBUG"
    assert Settings.from_env({}).log_level == "INFO"
    with pytest.raises(ConfigError, match="PRYVRT_LOG_LEVEL"):
        Settings.from_env({"PRYVRT_LOG_LEVEL": "LOUD"})


def test_the_redis_cluster_and_transaction_pooler_switches() -> None:
    url = "redis://10.0.0.21:6379"
    assert Settings.from_env({"REDIS_URL": url, "PRYVRT_REDIS_CLUSTER": "true"}).redis_cluster
    assert not Settings.from_env({"REDIS_URL": url}).redis_cluster
    with pytest.raises(ConfigError, match="PRYVRT_REDIS_CLUSTER needs REDIS_URL"):
        Settings.from_env({"PRYVRT_REDIS_CLUSTER": "1"})
    with pytest.raises(ConfigError, match="PRYVRT_REDIS_CLUSTER"):
        Settings.from_env({"REDIS_URL": url, "PRYVRT_REDIS_CLUSTER": "maybe"})
    assert Settings.from_env({"PRYVRT_DB_TRANSACTION_POOLER": "yes"}).db_transaction_pooler
    assert not Settings.from_env({}).db_transaction_pooler
