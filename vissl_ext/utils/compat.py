"""Compatibility fixes that let vissl 0.1.6 (and the classy_vision bundled in its wheel) run on
Python 3.11, numpy 2, torch 2.14 and setuptools >= 81.

Every fix is applied from outside the host packages, once. :func:`apply_early` holds those that
must precede the host's first module (they import only numpy, torch and torchvision);
:func:`apply` adds those that patch host modules. ``import vissl_ext`` arranges both
(:mod:`vissl_ext.utils.host_imports`): the early ones run when vissl, classy_vision or
detectron2 starts to be imported, the others once vissl or classy_vision has been. Each fix names
what it repairs.
"""
import collections
import collections.abc
import io
import os
import sys
import types
import warnings

_APPLIED = False
_EARLY_APPLIED = False


def fix_numpy_aliases():
    # numpy >= 1.24 removed np.float/np.int/np.bool/np.object; VISSL's mean_ap_meter,
    # svm_utils/evaluate, cutmixup_collator, classy's autoaugment, and detectron2's
    # SemSegEvaluator and pascal_voc_evaluation still use them. Public, and this module imports
    # nothing of ours at module level: scripts/install_detectron2.sh loads it by path to verify detectron2.
    import numpy as np

    for name, value in (("float", float), ("int", int), ("bool", bool), ("object", object)):
        if name not in np.__dict__:
            setattr(np, name, value)


def _fix_collections_abc():
    # Python 3.10 removed collections.MutableMapping (vissl/utils/misc.py flatten_dict,
    # classy_vision/generic/util.py, classy visdom hook).
    for name in ("MutableMapping", "Mapping", "Sequence", "Iterable"):
        if not hasattr(collections, name):
            setattr(collections, name, getattr(collections.abc, name))


def _fix_pkg_resources():
    # setuptools >= 81 no longer ships pkg_resources; vissl/utils/misc.py imports it at top
    # level (for resource_filename of its dataset catalog) and collect_env for get_distribution.
    try:
        import pkg_resources  # noqa: F401

        return
    except ImportError:
        pass
    import importlib.metadata
    import importlib.util
    import os

    shim = types.ModuleType("pkg_resources")

    def resource_filename(package, resource):
        spec = importlib.util.find_spec(package)
        base = list(spec.submodule_search_locations)[0] if spec.submodule_search_locations else os.path.dirname(spec.origin)
        return os.path.join(base, resource)

    class _Dist:
        def __init__(self, name):
            self.version = importlib.metadata.version(name)

    shim.resource_filename = resource_filename
    shim.get_distribution = _Dist
    shim.DistributionNotFound = importlib.metadata.PackageNotFoundError
    sys.modules["pkg_resources"] = shim


def _fix_torchvision_kinetics():
    # torchvision >= 0.15 removed datasets.kinetics.Kinetics400; the classy_vision bundled
    # with vissl imports it at module level (classy_vision/dataset/classy_kinetics400.py),
    # which breaks `import classy_vision.dataset`. Kinetics(num_classes="400") is its successor.
    import torchvision.datasets.kinetics as kinetics

    if not hasattr(kinetics, "Kinetics400"):
        kinetics.Kinetics400 = kinetics.Kinetics


def _fix_ddp_sync_params():
    # torch removed DistributedDataParallel._sync_params; VISSL's manual gradient reduction
    # (vissl/utils/activation_checkpointing.manual_sync_params) calls it. Its job (broadcast
    # buffers from rank 0 before forward) is what _sync_buffers does now.
    from torch.nn.parallel import DistributedDataParallel as DDP

    if not hasattr(DDP, "_sync_params"):
        def _sync_params(self):
            if self.will_sync_module_buffers():
                self._sync_buffers()

        DDP._sync_params = _sync_params


def _fix_broadcast_object():
    # classy's broadcast_object copies the pickled object through torch.ByteTensor(memoryview),
    # an element-by-element Python copy that takes seconds per checkpoint load even with one
    # process. Same protocol, with zero-copy frombuffer and a shortcut when there is no peer.
    import classy_vision.generic.distributed_util as du
    import torch

    from vissl_ext.utils.safe_load import torch_load_bytes

    if getattr(du.broadcast_object, "_vissl_ext", False):
        return

    def broadcast_object(obj, src=du._PRIMARY_RANK, use_disk=True):
        if du.get_world_size() == 1:
            return obj
        if du.get_rank() == src:
            buffer = io.BytesIO()
            torch.save(obj, buffer)
            data = bytearray(buffer.getbuffer())
            du.broadcast(torch.LongTensor([len(data)]), src=src)
            du.broadcast(torch.frombuffer(data, dtype=torch.uint8), src=src)
            return obj
        length = du.broadcast(torch.LongTensor([0]), src=src)
        data_tensor = du.broadcast(torch.empty([int(length.item())], dtype=torch.uint8), src=src)
        # weights_only, as the host's torch.load default: what rank 0 sends is a checkpoint it
        # loaded with weights_only=True
        return torch_load_bytes(data_tensor.numpy().tobytes())

    broadcast_object._vissl_ext = True
    du.broadcast_object = broadcast_object
    for mod_name in ("vissl.utils.checkpoint", "vissl.trainer.trainer_main", "classy_vision.tasks.classification_task"):
        mod = sys.modules.get(mod_name)
        if mod is not None and hasattr(mod, "broadcast_object"):
            mod.broadcast_object = broadcast_object


def _fix_checkpoint_writes_and_resume():
    # VISSL writes checkpoints in place (CheckpointWriter._save -> classy's save_checkpoint:
    # open(path, "wb") + torch.save), and AUTO_RESUME (is_training_finished,
    # get_resume_checkpoint) trusts any model_final* or highest-numbered model_* file: a job
    # killed while saving leaves a partial file that every rerun trusts. Atomic writes, and
    # a resume that validates candidates and moves corrupt ones aside (vissl_ext.utils.checkpoints).
    import classy_vision.generic.util as cu
    import vissl.utils.checkpoint as vc

    from vissl_ext.utils import checkpoints

    cu.save_checkpoint = vc.save_checkpoint = checkpoints.save_checkpoint
    vc.is_training_finished = checkpoints.is_training_finished
    vc.get_resume_checkpoint = checkpoints.get_resume_checkpoint
    dl = sys.modules.get("vissl.utils.distributed_launcher")  # imported these names by value
    if dl is not None:
        dl.is_training_finished = checkpoints.is_training_finished
        dl.get_resume_checkpoint = checkpoints.get_resume_checkpoint


def _fix_fvcore_checkpointer_save():
    # fvcore's Checkpointer.save (detectron2's DetectionCheckpointer, our ADE20K trainer)
    # writes <name>.pth and the last_checkpoint tag in place: same preemption hazard.
    from fvcore.common.checkpoint import Checkpointer

    from vissl_ext.utils.checkpoints import save_torch_atomic
    from vissl_ext.utils.atomic_io import atomic_open

    if getattr(Checkpointer.save, "_vissl_ext", False):
        return

    def save(self, name, **kwargs):
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        self.logger.info(f"Saving checkpoint to {save_file}")
        save_torch_atomic(data, save_file)
        with atomic_open(os.path.join(self.save_dir, "last_checkpoint"), "w") as f:
            f.write(basename)

    save._vissl_ext = True
    Checkpointer.save = save


def _quiet_hydra_version_base():
    # hydra 1.3 warns on every compose that version_base is unset (VISSL's compose call).
    warnings.filterwarnings("ignore", message="(?s).*version_base.*")
    warnings.filterwarnings("ignore", message=".*pkg_resources is deprecated.*")
    # classy_vision's video transforms import deprecated torchvision modules and use
    # torch.jit.script at import: warnings on every start that users cannot act on.
    warnings.filterwarnings("ignore", message=".*_transforms_video.*|.*_functional_video.*")
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*is deprecated.*")


def _mask_secrets_in_env_dumps():
    # VISSL's engines log every environment variable (vissl.utils.env.print_system_env_info):
    # API tokens and cloud keys set in the shell would reach the console and log.txt.
    from vissl_ext.utils.env_masking import mask_vissl_env_printing

    mask_vissl_env_printing()


def _safe_vissl_label_files():
    # VISSL's disk_filelist label loader (GenericSSLDataset.load_single_label_file) calls
    # np.load(allow_pickle=True): a crafted labels .npy would run code in every data worker.
    # Same contract (a .npy file, mmap when configured), object arrays through the restricted
    # unpickler of vissl_ext.utils.safe_load.
    from vissl.data.ssl_dataset import GenericSSLDataset

    if getattr(GenericSSLDataset.load_single_label_file, "_vissl_ext", False):
        return

    def load_single_label_file(self, path: str):
        from iopath.common.file_io import g_pathmgr

        from vissl_ext.utils.safe_load import load_npy

        assert g_pathmgr.isfile(path), f"Path to labels {path} is not a file"
        assert path.endswith("npy"), "Please specify a numpy file for labels"
        return load_npy(g_pathmgr.get_local_path(path), mmap_mode="r" if self.cfg["DATA"][self.split].MMAP_MODE else None)

    load_single_label_file._vissl_ext = True
    GenericSSLDataset.load_single_label_file = load_single_label_file


def apply_early():
    """The fixes that must be in place before the host's first module runs (idempotent)."""
    global _EARLY_APPLIED
    if _EARLY_APPLIED:
        return
    _quiet_hydra_version_base()
    fix_numpy_aliases()
    _fix_collections_abc()
    _fix_pkg_resources()
    _fix_torchvision_kinetics()
    _fix_ddp_sync_params()
    _EARLY_APPLIED = True


def apply():
    """Apply every fix once (idempotent); imports vissl and classy_vision."""
    global _APPLIED
    if _APPLIED:
        return
    apply_early()
    _fix_broadcast_object()
    _fix_checkpoint_writes_and_resume()
    _fix_fvcore_checkpointer_save()
    _mask_secrets_in_env_dumps()
    _safe_vissl_label_files()
    _APPLIED = True
