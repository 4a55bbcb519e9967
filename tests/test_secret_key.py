"""The server secret: from PRYVRT_SECRET_KEY, else generated once into the data directory."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pryvrt.auth.secret_key import load_secret_key
from pryvrt.config import ConfigError, Settings


def test_generated_once_into_the_data_dir_and_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    first = load_secret_key(settings)
    assert len(first) == 32
    assert load_secret_key(settings) == first
    mode = (tmp_path / "data" / "secret_key").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600


def test_workers_starting_together_agree(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: load_secret_key(settings), range(32)))
    assert len(keys) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]


def test_environment_key_wins_and_must_be_long(tmp_path: Path) -> None:
    env = {"PRYVRT_SECRET_KEY": "x" * 40, "PRYVRT_DATA_DIR": str(tmp_path)}
    settings = Settings.from_env(env)
    assert load_secret_key(settings) == load_secret_key(Settings.from_env(env))
    assert not (tmp_path / "secret_key").exists()
    with pytest.raises(ConfigError, match="PRYVRT_SECRET_KEY"):
        load_secret_key(Settings.from_env({"PRYVRT_SECRET_KEY": "short"}))
