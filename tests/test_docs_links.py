"""README.md and docs/*.md point at things that exist: every relative link, every `tools/X.py`
they name, and every `config=pretrain/...` / `config=benchmark/ris/...` of ours."""
import glob
import os
import re

import pytest

from vissl_ext_testing import REPO

PAGES = [os.path.join(REPO, "README.md")] + sorted(glob.glob(os.path.join(REPO, "docs", "*.md")))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
TOOL = re.compile(r"\btools/([\w]+\.py)\b")


def _links(page):
    for target in LINK.findall(open(page).read()):
        if not re.match(r"(https?:|mailto:|#)", target):
            yield target.split("#")[0]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: os.path.relpath(p, REPO))
def test_relative_links_resolve(page):
    missing = [t for t in _links(page) if not os.path.exists(os.path.join(os.path.dirname(page), t))]
    assert not missing, f"{os.path.relpath(page, REPO)} links to missing files: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: os.path.relpath(p, REPO))
def test_named_tools_exist(page):
    text = open(page).read()
    # tools/ of VISSL's own (train_svm.py, nearest_neighbor_test.py) are the host's, not ours
    host = {"train_svm.py", "nearest_neighbor_test.py", "run_distributed_engines.py"}
    missing = sorted({t for t in TOOL.findall(text) if t not in host and not os.path.isfile(os.path.join(REPO, "tools", t))})
    assert not missing, f"{os.path.relpath(page, REPO)} names tools that do not exist: {missing}"
    assert os.path.isfile(os.path.join(REPO, "tools", "run_distributed_engines.py"))


CONFIG = re.compile(r"\bconfig=([\w/]+)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: os.path.relpath(p, REPO))
def test_named_configs_exist_here_or_in_vissl(page):
    import importlib.util

    host = os.path.join(list(importlib.util.find_spec("configs").submodule_search_locations)[0], "config")
    names = {n for n in CONFIG.findall(open(page).read()) if not n.endswith("/")}  # "config=pretrain/..." is prose
    missing = sorted(n for n in names if not any(os.path.isfile(os.path.join(root, n + ".yaml"))
                                                 for root in (os.path.join(REPO, "configs", "config"), host)))
    assert not missing, f"{os.path.relpath(page, REPO)} names configs that exist neither here nor in VISSL: {missing}"


def test_the_checks_see_a_broken_link(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("[a](missing.md) [b](https://x.org) [c](#anchor) [d](p.md#x)")
    assert list(_links(str(page))) == ["missing.md", "p.md"]


def test_readme_is_a_front_door():
    assert os.path.getsize(os.path.join(REPO, "README.md")) <= 15 * 1024
