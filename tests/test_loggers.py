from pathlib import Path

from mendlight.loggers import RunLogger


def test_runs_started_together_claim_different_versions(tmp_path: Path):
    first, second = RunLogger(save_dir=str(tmp_path), name="x"), RunLogger(save_dir=str(tmp_path), name="x")
    # Both would pick version_0 by listing: the first claims it, the second moves on.
    assert first.version == 0
    assert second.version == 1
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["version_0", "version_1"]


def test_a_directory_claimed_between_listing_and_creation_is_skipped(tmp_path: Path, monkeypatch):
    logger = RunLogger(save_dir=str(tmp_path), name="x")
    (tmp_path / "x" / "version_0").mkdir(parents=True)
    (tmp_path / "x" / "version_1").mkdir()
    # Another run created version_1 after this one listed the directory (it saw only version_0).
    monkeypatch.setattr(RunLogger.__mro__[1], "_get_next_version", lambda self: 1)
    assert logger.version == 2
    assert (tmp_path / "x" / "version_2").is_dir()


def test_an_explicit_version_is_kept(tmp_path: Path):
    logger = RunLogger(save_dir=str(tmp_path), name="x", version=7, default_hp_metric=False)
    assert logger.version == 7
    assert logger.log_dir == str(tmp_path / "x" / "version_7")
