"""The house rules of the layout: every tools/*.py is a shim over a package CLI that follows one
convention (README, Layout)."""
import ast
import glob
import importlib
import os
import re

import pytest

from vissl_ext_testing import REPO

TOOLS = sorted(glob.glob(os.path.join(REPO, "tools", "*.py")))


def _main_module(tool: str) -> str:
    """The vissl_ext module a tool imports ``main`` from; asserts the tool is only a shim."""
    tree = ast.parse(open(tool).read())
    froms = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and any(a.name == "main" for a in n.names)]
    assert len(froms) == 1 and froms[0].module.startswith("vissl_ext."), f"{tool}: no `from vissl_ext.X import main`"
    defs = [n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    assert not defs, f"{tool} defines {defs}: a tool is a shim, its code lives in the package"
    return froms[0].module


def test_the_tools_are_the_documented_set():
    assert [os.path.basename(t) for t in TOOLS] == [
        "build_cropped_boxes.py", "build_gt_tracks.py", "build_ris_trajectories.py", "compute_ris.py",
        "convert_vissl_to_detectron2.py", "demo.py", "detect_shots.py", "draw_embedding.py",
        "export_trunk.py", "extract_frames.py", "knn_eval.py", "make_turntable.py", "plot_tensorboard.py",
        "propagate_labels.py", "propose_regions.py",
        "run_distributed_engines.py", "run_study.py", "track_regions.py", "train_ade20k_segmentation.py",
        "visualize_tracks.py"]


@pytest.mark.parametrize("tool", TOOLS, ids=os.path.basename)
def test_tool_is_a_shim_over_the_cli_convention(tool, capsys):
    mod = importlib.import_module(_main_module(tool))
    assert callable(mod.main)
    if mod.__name__ == "vissl_ext.engines.launcher":  # VISSL's hydra overrides, not argparse
        return
    assert callable(mod.run) and callable(mod.parse_args)
    with pytest.raises(SystemExit) as e:
        mod.parse_args(["--help"])
    assert e.value.code == 0
    # the usage examples of the module docstring are the --help text
    assert f"tools/{os.path.basename(tool)}" in capsys.readouterr().out


# ------------------------------------------------------------------------------ import graph
# Layers, lowest first: a module may import its own layer or a lower one, never a higher one.
# The package's register_all() imports the component modules by name (importlib), on purpose:
# that is registration, not a dependency, and an ast graph does not see it.
LAYERS = [
    ("core", ["vissl_ext", "vissl_ext.config", "vissl_ext.registry", "vissl_ext.utils", "vissl_ext.cli"]),
    ("video", ["vissl_ext.video"]),  # the offline chain: never imports VISSL (test below)
    ("data", ["vissl_ext.data"]),
    ("models", ["vissl_ext.models"]),  # trunks, heads, feature strides: training and the tracker build on them
    ("tracking/losses/hooks", ["vissl_ext.tracking", "vissl_ext.losses", "vissl_ext.hooks"]),
    ("invariance/segmentation/downstream/study", ["vissl_ext.invariance", "vissl_ext.segmentation", "vissl_ext.downstream",
                                                  "vissl_ext.study"]),
    ("engines/demo/cli", ["vissl_ext.engines", "vissl_ext.demo"]),  # and every *_cli module
]


def package_modules(root=REPO):
    """{module name: file} of every module of the vissl_ext package."""
    mods = {}
    for d, _, files in os.walk(os.path.join(root, "vissl_ext")):
        for f in files:
            if f.endswith(".py"):
                name = os.path.relpath(os.path.join(d, f), root)[:-3].replace(os.sep, ".")
                mods[name[: -len(".__init__")] if name.endswith(".__init__") else name] = os.path.join(d, f)
    return mods


def import_graph(mods):
    """{module: set of vissl_ext modules it imports}: every import statement, function-level ones too."""

    def resolve(name):
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name

    graph = {}
    for m, path in mods.items():
        deps = set()
        for node in ast.walk(ast.parse(open(path).read())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from pkg import submodule` depends on the submodule, not on pkg's __init__
                subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in mods]
                names = subs if len(subs) == len(node.names) else [node.module] + subs
            deps |= {resolve(n) for n in names if n.split(".")[0] == "vissl_ext"}
        graph[m] = deps - {m, ""}
    return graph


def layer_of(module: str) -> int:
    if module.endswith("_cli"):
        return len(LAYERS) - 1
    found = [i for i, (_, prefixes) in enumerate(LAYERS) for p in prefixes
             if module == p or (p != "vissl_ext" and module.startswith(p + "."))]
    assert found, f"{module} is in no layer: add it to LAYERS in tests/test_layout.py"
    return max(found)


def find_cycle(graph):
    """One import cycle as a list of modules, or None (depth-first search)."""
    state, path = {}, []

    def visit(m):
        state[m] = "open"
        path.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == "open":
                return path[path.index(d):] + [d]
            if d not in state:
                found = visit(d)
                if found:
                    return found
        path.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_no_import_cycle_among_vissl_ext_modules():
    graph = import_graph(package_modules())
    assert len(graph) > 50 and "vissl_ext.video.manifest" in graph["vissl_ext.video.tracks_io"]  # the graph is real
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_every_import_points_down_the_layers():
    graph = import_graph(package_modules())
    up = sorted(f"{m} ({LAYERS[layer_of(m)][0]}) imports {d} ({LAYERS[layer_of(d)][0]})"
                for m, deps in graph.items() for d in deps if layer_of(d) > layer_of(m))
    assert not up, "imports pointing up the layers:\n" + "\n".join(up)


def test_the_checks_catch_a_cycle_and_an_upward_import():
    graph = {"vissl_ext.data.a": {"vissl_ext.data.b"}, "vissl_ext.data.b": {"vissl_ext.data.c"},
             "vissl_ext.data.c": {"vissl_ext.data.a"}, "vissl_ext.config": set()}
    assert find_cycle(graph) == ["vissl_ext.data.a", "vissl_ext.data.b", "vissl_ext.data.c", "vissl_ext.data.a"]
    assert find_cycle({**graph, "vissl_ext.data.c": set()}) is None
    assert layer_of("vissl_ext.config") < layer_of("vissl_ext.video.manifest") < layer_of("vissl_ext.tracking.tracker")
    assert layer_of("vissl_ext.tracking.tracker") < layer_of("vissl_ext.invariance.ris") < layer_of("vissl_ext.tracking.track_cli")
    assert layer_of("vissl_ext.models.strides") < layer_of("vissl_ext.tracking.features") == layer_of("vissl_ext.hooks.base")


TRAINING = ("vissl_ext.models", "vissl_ext.losses", "vissl_ext.hooks", "vissl_ext.data")


def test_training_never_imports_the_offline_tracker():
    """The training path (data, models, losses, hooks) shares code with tracking/ only through the
    lower layers (models/ owns the feature strides): training never depends on the tracker package."""
    graph = import_graph(package_modules())
    offenders = sorted(f"{m} imports {d}" for m, deps in graph.items() if m.startswith(TRAINING)
                       for d in deps if d.startswith("vissl_ext.tracking"))
    assert not offenders, "\n".join(offenders)


# ------------------------------------------------------------------------------ no test hooks
# Faults that tests inject (a SIGKILL mid-save, a shard task killed) live in
# tests/fault_injection/ and reach a subprocess through its PYTHONPATH: the package reads no
# test-only environment variable.
_TEST_ENV_NAME = re.compile(r"^(?:[A-Z0-9]+_)*TEST_[A-Z0-9_]+$|^[A-Z0-9_]+_TEST$")


def find_test_only_hooks(source: str):
    """Test-only environment names in a module's source: VISSL_EXT_TEST_* anywhere, and string
    constants named like an environment variable with a TEST_ part (not a split name: 'TEST')."""
    found = set(re.findall(r"VISSL_EXT_TEST_\w*", source))
    found |= {n.value for n in ast.walk(ast.parse(source))
              if isinstance(n, ast.Constant) and isinstance(n.value, str) and _TEST_ENV_NAME.match(n.value)}
    return sorted(found)


def test_no_test_only_env_hooks_in_the_package():
    mods = package_modules()
    hooks = {m: find_test_only_hooks(open(p).read()) for m, p in mods.items()}
    assert not {m: h for m, h in hooks.items() if h}, "test-only hooks in the package (inject from tests/fault_injection/)"
    # the check sees the hooks the package once had, and leaves VISSL's split names alone
    assert find_test_only_hooks('KILL_AT_SAVE_ENV = "VISSL_EXT_TEST_SIGKILL_AT_SAVE"') == ["VISSL_EXT_TEST_SIGKILL_AT_SAVE"]
    assert find_test_only_hooks('if os.environ.get("VISSL_EXT_TEST_KILL_SHARD") == "1": pass') == ["VISSL_EXT_TEST_KILL_SHARD"]
    assert find_test_only_hooks('x = os.environ.get("MYLIB_TEST_FAULT")') == ["MYLIB_TEST_FAULT"]
    assert find_test_only_hooks('split = cfg["DATA"]["TEST"]; r = os.environ["RANK"]') == []


HOST_STACK = ("vissl", "classy_vision", "detectron2", "fairscale")


def test_the_video_chain_never_imports_the_training_stack():
    """video/ is the offline chain: no module of it imports VISSL, classy_vision or detectron2, nor a
    vissl_ext module that does at its top level."""
    mods = package_modules()
    graph = import_graph(mods)
    offenders = []
    for m in sorted(x for x in mods if x.startswith("vissl_ext.video.") or x == "vissl_ext.video"):
        for node in ast.walk(ast.parse(open(mods[m]).read())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
            offenders += [f"{m} imports {n}" for n in names if n.split(".")[0] in HOST_STACK]
        offenders += [f"{m} imports {d}" for d in graph[m] if layer_of(d) > layer_of("vissl_ext.video")]
    assert not offenders, "\n".join(offenders)
