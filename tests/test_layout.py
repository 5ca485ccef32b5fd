"""The house rules of the layout: every tools/*.py is a shim over a package CLI that follows one
convention (README, Layout)."""
import ast
import glob
import importlib
import os

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


def test_there_are_tools():
    assert len(TOOLS) >= 12


@pytest.mark.parametrize("tool", TOOLS, ids=os.path.basename)
def test_tool_is_a_shim_over_the_cli_convention(tool, capsys):
    mod = importlib.import_module(_main_module(tool))
    assert callable(mod.main)
    if mod.__name__ == "vissl_ext.launcher":  # VISSL's hydra overrides, not argparse
        return
    assert callable(mod.run) and callable(mod.parse_args)
    with pytest.raises(SystemExit) as e:
        mod.parse_args(["--help"])
    assert e.value.code == 0
    # the usage examples of the module docstring are the --help text
    assert f"tools/{os.path.basename(tool)}" in capsys.readouterr().out
