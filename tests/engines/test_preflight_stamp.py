"""vissl_ext.engines.preflight.stamp_validated: the launcher's stamp exists for the ranks it starts and
the environment is as before afterwards (the launcher also runs in-process)."""
import json
import os

from vissl_ext.utils.validation_stamp import STAMP_ENV, STAMP_NAME, file_key, launcher_validated
from vissl_ext.engines.preflight import stamp_validated


def test_the_stamp_is_seen_inside_only_and_the_environment_restored(tmp_path, monkeypatch):
    m = tmp_path / "manifest.json"
    m.write_text("{}")
    monkeypatch.setenv(STAMP_ENV, "/elsewhere/stamp.json")  # e.g. a launcher started by a launcher
    with stamp_validated(str(tmp_path / "ck"), [file_key(str(m))]) as stamp:
        assert os.environ[STAMP_ENV] == stamp == str(tmp_path / "ck" / STAMP_NAME)
        assert [r["path"] for r in json.load(open(stamp))["files"]] == [str(m)]
        assert launcher_validated(str(m))
    assert os.environ[STAMP_ENV] == "/elsewhere/stamp.json"
    monkeypatch.delenv(STAMP_ENV)
    with stamp_validated(str(tmp_path / "ck2"), [file_key(str(m))]):
        assert STAMP_ENV in os.environ
    assert STAMP_ENV not in os.environ and not launcher_validated(str(m))


def test_nothing_validated_writes_no_stamp(tmp_path, monkeypatch):
    monkeypatch.delenv(STAMP_ENV, raising=False)
    with stamp_validated(str(tmp_path / "ck"), []) as stamp:
        assert stamp is None and STAMP_ENV not in os.environ
    assert not (tmp_path / "ck").exists()


def test_a_stamp_left_in_the_shell_does_not_stand_for_this_launch(tmp_path, monkeypatch):
    """Nothing validated by this launch: a stale VISSL_EXT_PREFLIGHT_STAMP (an earlier run's, still
    matching its manifest) is hidden from the ranks, then restored."""
    m = tmp_path / "manifest.json"
    m.write_text("{}")
    with stamp_validated(str(tmp_path / "old"), [file_key(str(m))]) as old:
        pass
    monkeypatch.setenv(STAMP_ENV, old)
    assert launcher_validated(str(m))  # the stale stamp still matches
    with stamp_validated(str(tmp_path / "ck"), []):
        assert STAMP_ENV not in os.environ and not launcher_validated(str(m))
    assert os.environ[STAMP_ENV] == old
