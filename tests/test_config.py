"""Configuration from TRIBUNE_* and the persisted secret key."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tribune.config import SECRET_FILE, Settings


def test_secret_is_generated_once_and_kept(tmp_path: Path):
    """No key given: one is generated, written 0600, and the same key comes back next start."""
    first = Settings(data_dir=tmp_path).resolved_secret()
    path = tmp_path / SECRET_FILE
    assert len(first) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Settings(data_dir=tmp_path).resolved_secret() == first
    other = tmp_path / "other"
    assert Settings(data_dir=other).resolved_secret() != first


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """TRIBUNE_* variables configure everything; a short secret is refused."""
    monkeypatch.setenv("TRIBUNE_PORT", "9123")
    monkeypatch.setenv("TRIBUNE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TRIBUNE_SECRET_KEY", "k" * 40)
    settings = Settings()
    assert settings.port == 9123
    assert settings.resolved_secret() == b"k" * 40
    assert not (tmp_path / SECRET_FILE).exists()
    assert (
        settings.resolved_database_url() == f"sqlite+aiosqlite:///{tmp_path.resolve()}/tribune.db"
    )
    monkeypatch.setenv("TRIBUNE_SECRET_KEY", "short")
    with pytest.raises(ValueError, match="at least 32"):
        Settings().resolved_secret()
    monkeypatch.setenv("TRIBUNE_PORT", "not-a-port")
    with pytest.raises(ValueError, match="port"):
        Settings()


def test_edges_are_a_list_of_base_urls(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, edges=" http://10.0.0.7:8080/, https://e2.example ")
    assert settings.edge_urls() == ["http://10.0.0.7:8080", "https://e2.example"]
    assert Settings(data_dir=tmp_path).edge_urls() == []
    for bad in ("10.0.0.7:8080", "http://e/x", "ftp://e"):
        with pytest.raises(ValueError, match="TRIBUNE_EDGES"):
            Settings(data_dir=tmp_path, edges=bad).edge_urls()


def test_nice_is_a_niceness_to_add(tmp_path: Path) -> None:
    """TRIBUNE_NICE: 0 to 19 (tests/scaled/test_cluster.py sees the API workers at 10);
    a process may only lower its own priority."""
    assert Settings(data_dir=tmp_path).nice == 0
    assert Settings(data_dir=tmp_path, nice=10).nice == 10
    for bad in (-5, 20):
        with pytest.raises(ValueError, match="nice"):
            Settings(data_dir=tmp_path, nice=bad)
