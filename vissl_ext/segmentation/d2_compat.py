"""Runtime fixes that let detectron2 v0.6 run on this stack (Pillow >= 10, numpy 2, torch 2.x).

Apply with :func:`apply` before importing ``detectron2.data`` (one fix repairs a default argument
evaluated at import time): ``vissl_ext.segmentation`` does, first thing, and ``import vissl_ext``
imports that package the moment detectron2's own (light) ``__init__`` has run. :func:`apply_engine_fixes` repairs detectron2.engine
(CPU multi-process launch and DDP wrapping); ``vissl_ext.segmentation.train`` calls it. Standalone
on purpose (no vissl import): scripts/install_detectron2.sh loads it by path to verify the install
before vissl_ext is installed. Each fix names what it repairs. The numpy 2 aliases detectron2's
evaluators need (np.int, np.float) are restored by vissl_ext.utils.compat.fix_numpy_aliases, which
``import vissl_ext`` applies as detectron2 starts to be imported (the install script calls it too).
"""

_APPLIED = False


def _fix_pillow_linear():
    # Pillow 10 removed Image.LINEAR (an alias of BILINEAR); detectron2/data/transforms/transform.py
    # uses it as the default `interp` of ExtentTransform, evaluated when the module is imported.
    from PIL import Image

    if not hasattr(Image, "LINEAR"):
        Image.LINEAR = Image.BILINEAR


def _fix_missing_extension():
    # A detectron2 built without its C++ extension and without our stand-in (e.g. pip-installed
    # from the pb1-detectron2 sdist by hand) has no detectron2._C, which detectron2.layers imports
    # at module level. Register the stand-in that raises a clear error when a compiled op is used.
    import glob
    import importlib.util
    import os
    import sys

    # Looked up on disk, without importing detectron2 (an install check calls this too).
    spec = importlib.util.find_spec("detectron2")
    if "detectron2._C" in sys.modules or spec is None or not spec.submodule_search_locations:
        return
    if any(glob.glob(os.path.join(d, "_C*")) for d in spec.submodule_search_locations):
        return
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "d2_stub_C.py")
    spec = importlib.util.spec_from_file_location("detectron2._C", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["detectron2._C"] = module


def _cpu_capable_distributed_worker(local_rank, main_func, world_size, num_gpus_per_machine, machine_rank,
                                    dist_url, args, timeout=None):
    """detectron2.engine.launch._distributed_worker as in upstream detectron2 after v0.6: gloo and
    no CUDA device setup when there is no GPU (v0.6 asserts CUDA and uses NCCL)."""
    import logging

    import torch
    import torch.distributed as dist
    from detectron2.engine.launch import DEFAULT_TIMEOUT
    from detectron2.utils import comm

    has_gpu = torch.cuda.is_available()
    if has_gpu:
        assert num_gpus_per_machine <= torch.cuda.device_count()
    global_rank = machine_rank * num_gpus_per_machine + local_rank
    try:
        dist.init_process_group(backend="NCCL" if has_gpu else "GLOO", init_method=dist_url,
                                world_size=world_size, rank=global_rank, timeout=timeout or DEFAULT_TIMEOUT)
    except Exception:
        logging.getLogger(__name__).error(f"Process group URL: {dist_url}")
        raise
    assert comm._LOCAL_PROCESS_GROUP is None
    for i in range(world_size // num_gpus_per_machine):
        ranks_on_i = list(range(i * num_gpus_per_machine, (i + 1) * num_gpus_per_machine))
        pg = dist.new_group(ranks_on_i)
        if i == machine_rank:
            comm._LOCAL_PROCESS_GROUP = pg
    if has_gpu:
        torch.cuda.set_device(local_rank)
    comm.synchronize()
    main_func(*args)


_cpu_capable_distributed_worker._vissl_ext = True


def apply_engine_fixes():
    """Fixes of detectron2.engine (imports it: call where the engine is used, not at package import)."""
    import importlib

    import torch

    # by module path: the package detectron2.engine re-exports a *function* named launch
    defaults = importlib.import_module("detectron2.engine.defaults")
    launch = importlib.import_module("detectron2.engine.launch")

    # detectron2 v0.6's launch asserts CUDA: several CPU processes (gloo) are how DDP code is
    # tested on CPU machines. Upstream lifted this after v0.6; this is that code.
    launch._distributed_worker = _cpu_capable_distributed_worker
    # create_ddp_model passes device_ids=[local rank], which DistributedDataParallel rejects for a
    # CPU module; on CPU it must be None.
    if not getattr(defaults.create_ddp_model, "_vissl_ext", False):
        original = defaults.create_ddp_model

        def create_ddp_model(model, *, fp16_compression=False, **kwargs):
            if not torch.cuda.is_available():
                kwargs.setdefault("device_ids", None)
            return original(model, fp16_compression=fp16_compression, **kwargs)

        create_ddp_model._vissl_ext = True
        defaults.create_ddp_model = create_ddp_model


def apply():
    """Apply every fix once (idempotent)."""
    global _APPLIED
    if _APPLIED:
        return
    _fix_pillow_linear()
    _fix_missing_extension()
    _APPLIED = True
