import os
from dataclasses import asdict

import pytest
import yaml

from vissl_ext.tracking.track_cli import load_params_file
from vissl_ext.tracking.tracker import TrackerParams
from vissl_ext_testing import REPO


def test_shipped_yaml_equals_code_defaults():
    path = os.path.join(REPO, "configs", "tracking", "region_tracker.yaml")
    assert load_params_file(path) == asdict(TrackerParams())


def test_bad_params_name_the_file_and_key(tmp_path):
    p = tmp_path / "t.yaml"
    p.write_text(yaml.safe_dump({"tracker": {"thresold": 0.5}}))
    with pytest.raises(ValueError, match=r"t.yaml: unknown tracker parameters \['thresold'\]"):
        load_params_file(str(p))
    p.write_text(yaml.safe_dump({"tracker": {"delta": 0}}))
    with pytest.raises(ValueError, match="t.yaml: .*delta"):
        load_params_file(str(p))
