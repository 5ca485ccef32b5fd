"""Stand-in for detectron2's compiled extension ``detectron2._C`` in a build without C++ ops.

scripts/install_detectron2.sh installs this file as ``detectron2/_C.py`` when it builds detectron2
from the PyPI sdist (which lacks the C++ sources). ``detectron2.layers`` imports ``_C`` at module
level for deformable convolution and rotated boxes, so without a module there even the
semantic-segmentation path (which calls no compiled op) cannot be imported. Any use of a compiled
op raises an error that names what is missing and how to get it.
"""

VISSL_EXT_STUB = True
_NOT_BUILT = "none: detectron2 built without its C++ extension (scripts/install_detectron2.sh)"


# detectron2.utils.collect_env (run by default_setup) reports these: say what this build is.
def get_compiler_version():
    return _NOT_BUILT


def get_cuda_version():
    return _NOT_BUILT


def has_cuda():
    return False


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    raise ImportError(
        f"detectron2._C.{name} is a compiled op, and this detectron2 was installed without its C++ "
        "extension (scripts/install_detectron2.sh builds the PyPI sdist pb1-detectron2==0.6, which "
        "lacks the sources). Missing: deformable conv, ROIAlignRotated, rotated-box IoU/NMS, the fast "
        "COCO evaluator. Install detectron2 from its upstream source to use them: "
        "D2_SOURCE=/path/to/detectron2 D2_FORCE=1 bash scripts/install_detectron2.sh"
    )
