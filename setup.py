"""vissl_ext: an out-of-tree VISSL plugin (see README.md).

Install with the README's commands; `pip install -e .` alone expects the pinned stack of
requirements.txt and vissl from requirements-nodeps.txt (installed with --no-deps).
"""
import os
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py


class BuildPyWithConfigs(build_py):
    """Ship configs/ inside the package (vissl_ext/_configs) for non-editable installs, so the
    hydra search path plugin finds them without a checkout. configs/ itself must not be an
    importable package: vissl's wheel owns the top-level name `configs`."""

    def run(self):
        super().run()
        src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
        dst = os.path.join(self.build_lib, "vissl_ext", "_configs")
        if os.path.isdir(src):
            shutil.copytree(src, dst, dirs_exist_ok=True)


setup(
    name="vissl_ext",
    version="0.1.0",
    description="Video temporal invariance, region tracker, temporal contrastive loss and RIS for VISSL",
    python_requires=">=3.10",
    packages=find_packages(include=["vissl_ext", "vissl_ext.*"]) + ["hydra_plugins.vissl_ext_plugin"],
    cmdclass={"build_py": BuildPyWithConfigs},
)
