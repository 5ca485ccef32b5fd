"""One source of truth for temporal_contrastive_loss's settings: the code's DEFAULTS, which the
shipped YAML and the table of docs/tracking.md repeat (as test_tracker_params does for the tracker)."""
import os
import re

import pytest
import yaml

from vissl_ext.config import ConfigError
from vissl_ext.losses.temporal_contrastive_loss import DEFAULTS, TemporalContrastiveLoss
from vissl_ext_testing import REPO


def test_shipped_yaml_equals_code_defaults():
    with open(os.path.join(REPO, "configs", "config", "pretrain", "region_tracker.yaml")) as f:
        doc = yaml.safe_load(f)
    assert doc["config"]["LOSS"]["temporal_contrastive_loss"] == DEFAULTS


def test_docs_table_equals_code_defaults():
    with open(os.path.join(REPO, "docs", "tracking.md")) as f:
        text = f.read()
    table = text[text.index("The loss's settings, under `config.LOSS.temporal_contrastive_loss`"):]
    seen = {}
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            if seen:
                break
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        keys = re.findall(r"`(\w+)`", cells[0])
        if not keys:
            continue
        values = [v.strip() for v in cells[1].split(",")]
        assert len(values) == len(keys), line
        seen.update({k: yaml.safe_load(v) for k, v in zip(keys, values)})
    assert seen == DEFAULTS


def test_momentum_default_reaches_the_hook():
    from vissl_ext.hooks.temporal_contrastive_hook import temporal_contrastive_hooks
    from vissl_ext_testing import compose

    cfg = compose("config=pretrain/tiny/region_tracker_cpu")
    del cfg.LOSS.temporal_contrastive_loss["momentum"]
    assert temporal_contrastive_hooks(cfg)[0].momentum == DEFAULTS["momentum"]


def test_unknown_keys_are_a_config_error_naming_them():
    with pytest.raises(ConfigError, match=r"config.LOSS.temporal_contrastive_loss has unknown keys \['queue_sise'\]"):
        TemporalContrastiveLoss({"name": "temporal_contrastive_loss", "queue_sise": 4})
