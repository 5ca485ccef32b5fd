"""``import vissl_ext`` is light, and importing a host package afterwards (or before) applies the
compatibility fixes and registers every component: vissl_ext.utils.host_imports."""
import importlib.abc
import json
import os
import subprocess
import sys
import textwrap

import pytest

from vissl_ext.utils.host_imports import _HostImportFinder
from vissl_ext_testing import REPO

HOSTS = ("vissl", "classy_vision", "detectron2")


def fresh(code: str, env=None) -> dict:
    """Run ``code`` in a fresh interpreter (cwd: the checkout); it prints one JSON line last."""
    p = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=REPO,
                       env={**os.environ, **(env or {})}, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


REGISTERED = """
    import json, sys
    from vissl.data import DATASET_SOURCE_MAP
    from classy_vision.dataset.transforms import TRANSFORM_REGISTRY
    import vissl.utils.checkpoint as vc
    from vissl_ext.utils import checkpoints
    print(json.dumps({"sources": "video_frame_pairs" in DATASET_SOURCE_MAP and "ris_manifest" in DATASET_SOURCE_MAP,
                      "transform": "VideoFramesToViews" in TRANSFORM_REGISTRY,
                      "fixes": vc.get_resume_checkpoint is checkpoints.get_resume_checkpoint,
                      "hosts": [m for m in %r if m in sys.modules]}))
""" % (HOSTS,)


def test_import_vissl_ext_loads_no_host_nor_torch():
    out = fresh("import json, sys, vissl_ext\n"
                "print(json.dumps([m for m in ('vissl', 'classy_vision', 'detectron2', 'torch') if m in sys.modules]))")
    assert out == []


def test_vissl_imported_before_vissl_ext_registers_at_once():
    # vissl's package __init__ imports nothing: its modules that need the early fixes come later
    out = fresh("import vissl, vissl_ext\n" + textwrap.dedent(REGISTERED))
    assert out["sources"] and out["transform"] and out["fixes"]


def test_classy_vision_alone_gets_the_early_fixes_and_the_registrations():
    # classy_vision.dataset imports torchvision's Kinetics400, gone from torchvision: the early fix
    # must run before classy's modules, and our transforms register into classy's registry
    out = fresh("""
        import json, sys, vissl_ext
        from classy_vision.dataset.transforms import TRANSFORM_REGISTRY
        import classy_vision.dataset
        print(json.dumps("VideoFramesToViews" in TRANSFORM_REGISTRY))
    """)
    assert out is True


def test_a_component_module_imported_first_sees_every_registration():
    # video_sources reaches vissl half-way through its own import; registration (which imports
    # region_pairs, importing a class of video_sources) must wait until video_sources is complete
    out = fresh("import vissl_ext.data.video_sources\n" + textwrap.dedent(REGISTERED))
    assert out["sources"] and out["transform"] and out["fixes"] and "detectron2" not in out["hosts"]


def test_importing_vissl_afterwards_applies_the_fixes_and_registers_ours_and_the_plugins(tmp_path):
    (tmp_path / "env_plugin.py").write_text(textwrap.dedent("""
        from vissl_ext.registry import register_data_source

        @register_data_source("env_plugin_source")
        class EnvPluginSource:
            pass
    """))
    code = ("import sys, vissl_ext\n"
            "assert 'env_plugin' not in sys.modules\n"
            "import vissl\n"
            "from vissl.data import DATASET_SOURCE_MAP\n"
            "assert 'env_plugin_source' in DATASET_SOURCE_MAP\n") + textwrap.dedent(REGISTERED)
    env = {"VISSL_EXT_PLUGINS": "env_plugin", "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    assert fresh(code, env) == {"sources": True, "transform": True, "fixes": True, "hosts": ["vissl", "classy_vision"]}


def test_detectron2_import_applies_its_fixes_and_registers_the_head():
    out = fresh("""
        import json, sys, vissl_ext
        from PIL import Image
        before = hasattr(Image, "LINEAR")
        from detectron2.data.transforms import ExtentTransform  # default interp=Image.LINEAR at import
        from detectron2.modeling import SEM_SEG_HEADS_REGISTRY
        print(json.dumps({"before": before, "interp": ExtentTransform((0, 0, 4, 4), (2, 2)).interp == Image.BILINEAR,
                          "head": "TwoLayerUpsampleHead" in SEM_SEG_HEADS_REGISTRY, "vissl": "vissl" in sys.modules}))
    """)
    assert out == {"before": False, "interp": True, "head": True, "vissl": False}


# ----------------------------------------------------------------------- the finder, in-process
def _fake_host(root, name, body=""):
    pkg = root / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text(f"import builtins\nbuiltins._HOST_LOG.append('init {name}')\n{body}")
    (pkg / "sub.py").write_text(f"import builtins\nbuiltins._HOST_LOG.append('sub {name}')\n")


@pytest.fixture
def finder_env(tmp_path, monkeypatch):
    import builtins

    log = []
    monkeypatch.setattr(builtins, "_HOST_LOG", log, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    added = []

    def install(before, after):
        f = _HostImportFinder(before, after)
        sys.meta_path.insert(0, f)
        added.append(f)
        return f

    yield tmp_path, log, install
    for f in added:
        sys.meta_path.remove(f)
    for m in [m for m in sys.modules if m.split(".")[0].startswith("fakehost")]:
        del sys.modules[m]


def test_before_runs_ahead_of_the_package_and_after_once_it_is_complete(finder_env):
    root, log, install = finder_env
    _fake_host(root, "fakehost_a")
    install(before={"fakehost_a": [lambda: log.append("before")]},
            after={"fakehost_a": [lambda: log.append(f"after, sub imported: {'fakehost_a.sub' in sys.modules}")]})
    import fakehost_a.sub  # noqa: F401  (the parent first, then the submodule)

    assert log == ["before", "init fakehost_a", "after, sub imported: False", "sub fakehost_a"]
    # the module keeps its own loader, unpatched once imported
    assert "exec_module" not in vars(sys.modules["fakehost_a"].__loader__)
    log.clear()
    import fakehost_a  # noqa: F401,F811  (imported: nothing runs again)

    assert log == []


def test_after_hooks_wait_while_one_of_ours_is_mid_import(finder_env):
    root, log, install = finder_env
    _fake_host(root, "fakehost_b")
    f = install(before={}, after={"fakehost_b": [lambda: log.append("after")]})
    state = f._local()
    state.depth += 1  # as while one of vissl_ext's modules is being imported
    try:
        import fakehost_b  # noqa: F401
    finally:
        state.depth -= 1
    assert log == ["init fakehost_b"]
    f.run_pending()  # what the outermost of our imports does when it completes
    assert log == ["init fakehost_b", "after"]


def test_a_failed_host_import_runs_no_after_hook(finder_env):
    root, log, install = finder_env
    _fake_host(root, "fakehost_c", body="raise RuntimeError('broken host')\n")
    install(before={}, after={"fakehost_c": [lambda: log.append("after")]})
    with pytest.raises(RuntimeError, match="broken host"):
        import fakehost_c  # noqa: F401
    assert log == ["init fakehost_c"]


class _AskEveryone(importlib.abc.MetaPathFinder):
    """A post-import patcher as some tools write them (tests/fault_injection/sitecustomize.py):
    it asks every other finder on sys.meta_path, ours included, and wraps the loader."""

    def __init__(self, name, log):
        self.name, self.log = name, log

    def find_spec(self, name, path, target=None):
        if name != self.name:
            return None
        for finder in sys.meta_path:
            if finder is not self and hasattr(finder, "find_spec"):
                spec = finder.find_spec(name, path, target)
                if spec is not None:
                    inner, log = spec.loader, self.log

                    class Patching(importlib.abc.Loader):
                        def create_module(self, spec):
                            return inner.create_module(spec)

                        def exec_module(self, module):
                            inner.exec_module(module)
                            log.append("patched")

                    spec.loader = Patching()
                    return spec
        return None


@pytest.mark.parametrize("position", ["behind", "in front"])
def test_a_finder_that_asks_every_finder_does_not_recurse(finder_env, position):
    root, log, install = finder_env
    _fake_host(root, "fakehost_d")
    install(before={"fakehost_d": [lambda: log.append("before")]}, after={"fakehost_d": [lambda: log.append("after")]})
    other = _AskEveryone("fakehost_d", log)
    sys.meta_path.insert(1 if position == "behind" else 0, other)
    try:
        import fakehost_d  # noqa: F401
    finally:
        sys.meta_path.remove(other)
    # each ran once; which of "after" and "patched" is first depends on whose loader wraps whose
    assert log[:2] == ["before", "init fakehost_d"] and sorted(log[2:]) == ["after", "patched"]
