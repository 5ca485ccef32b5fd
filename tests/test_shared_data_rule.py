"""Tests needing ../shared/data: skipped with a reason on a newcomer's clone, failed under CI=true."""
import pytest

import vissl_ext_testing
from vissl_ext_testing import shared_path


@pytest.mark.parametrize("ci", ["true", "1", "TRUE"])
def test_missing_shared_data_fails_under_ci(monkeypatch, tmp_path, ci):
    monkeypatch.setattr(vissl_ext_testing, "SHARED_DATA", str(tmp_path / "absent"))
    monkeypatch.setenv("CI", ci)
    with pytest.raises(BaseException, match=r"absent.*video_opencv.*CI=true") as e:
        shared_path("video_opencv")
    assert e.type is pytest.fail.Exception  # a skip would be reported as passing the rule


@pytest.mark.parametrize("ci", [None, "", "false", "0"])
def test_missing_shared_data_skips_without_ci(monkeypatch, tmp_path, ci):
    monkeypatch.setattr(vissl_ext_testing, "SHARED_DATA", str(tmp_path / "absent"))
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(BaseException, match=r"needs .*absent.*video_opencv") as e:
        shared_path("video_opencv")
    assert e.type is pytest.skip.Exception


def test_present_shared_data_is_returned_in_both(monkeypatch, tmp_path):
    (tmp_path / "d").mkdir()
    monkeypatch.setattr(vissl_ext_testing, "SHARED_DATA", str(tmp_path))
    for ci in ("true", "false"):
        monkeypatch.setenv("CI", ci)
        assert shared_path("d") == str(tmp_path / "d")
