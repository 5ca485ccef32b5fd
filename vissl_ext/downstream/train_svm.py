"""VISSL's VOC07 SVM benchmark flow, unchanged, run with vissl_ext's fixes and components.

The host's ``tools/train_svm.py`` (shipped in the vissl wheel as the ``tools`` package) extracts
trunk features with VISSL's ``extract_features`` engine and trains/tests one linear SVM per class
and layer with ``vissl.utils.svm_utils.SVMTrainer``. Run directly it imports vissl without the
compatibility fixes this stack needs (numpy 2, setuptools >= 81, Python 3.11), so this module
imports vissl_ext first, composes the config through our launcher (our config search path and
checks) and hands over to the host's ``main``. VISSL's feature extraction asserts a GPU; with
``config.MACHINE.DEVICE=cpu`` the same extraction loop runs on CPU (vissl_ext.invariance.engine's
``extract_cpu``: same model, loader and the host's shard writer), for tests and small runs:

    python -m vissl_ext.downstream.train_svm \
        config=benchmark/linear_image_classification/voc07/eval_resnet_8gpu_transfer_voc07_svm \
        config.MODEL.WEIGHTS_INIT.PARAMS_FILE=<checkpoint> ...
"""
import sys

import vissl_ext  # noqa: F401  (before vissl: its import then applies the compat fixes and registers)
from vissl_ext.config import ConfigError, compose_config


def _allow_cpu_extraction():
    from vissl.trainer.trainer_main import SelfSupervisionTrainer

    original = SelfSupervisionTrainer.extract
    if getattr(original, "_vissl_ext_cpu", False):
        return

    def extract(self, output_folder: str) -> None:
        if self.task.device.type == "cuda":
            return original(self, output_folder)
        from vissl_ext.invariance.engine import extract_cpu

        return extract_cpu(self, output_folder)

    extract._vissl_ext_cpu = True
    SelfSupervisionTrainer.extract = extract


def main(argv=None) -> int:
    """``argv``: VISSL's hydra overrides, as for the launcher; default sys.argv[1:]. Exit code 2
    for a config error."""
    # the vissl wheel's tools/train_svm.py (a regular package wins over our namespace-less tools/)
    from tools.train_svm import main as host_main

    try:
        args, config = compose_config(list(sys.argv[1:] if argv is None else argv))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if config.MACHINE.DEVICE != "gpu":
        _allow_cpu_extraction()
    host_main(args, config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
