"""Settings from the environment: malformed values stop the server at start-up."""

from __future__ import annotations

import pytest

from pryvrt.config import ConfigError, Settings


def test_the_log_level_is_a_setting_checked_at_start() -> None:
    assert Settings.from_env({"PRYVRT_LOG_LEVEL": "debug"}).log_level == "DEBUG"
    assert Settings.from_env({}).log_level == "INFO"
    with pytest.raises(ConfigError, match="PRYVRT_LOG_LEVEL"):
        Settings.from_env({"PRYVRT_LOG_LEVEL": "LOUD"})
