"""VISSL engine ``ris``: extract features of a VISSL model on a RIS manifest (VISSL's own
feature-extraction flow, distributed) and write the scores.

    python tools/run_distributed_engines.py config=benchmark/ris/aloi_viewpoint \
        config.DATA.TEST.DATA_PATHS=[/data/ris/aloi_viewpoint.json] \
        config.MODEL.WEIGHTS_INIT.PARAMS_FILE=/ckpt/model_final_checkpoint_phase199.torch

On GPUs the host's ``SelfSupervisionTrainer.extract`` runs unchanged. VISSL's extract asserts a
GPU; on CPU the same loop runs here (same model, data loader, DDP wrapping and the host's
own shard writer), so the scores can be produced on any machine. Rank 0 then merges the shards
with VISSL's ExtractedFeaturesLoader, computes RIS and writes JSON, table and chart.
Re-running with the same CHECKPOINT.DIR reuses extracted features (marker file).
"""
import json
import logging
import os
import time
from typing import Any, Callable, List

import torch

from vissl_ext.config import ConfigError, register_config_validator, with_defaults
from vissl_ext.invariance.ris import default_threads
from vissl_ext.utils.safe_load import torch_load

RIS_DEFAULTS = {
    "MODEL_NAME": "",  # row label in the table (default: the PARAMS_FILE name, or "random_init")
    "TOPK": [10, 25],
    "OUTPUT_DIR": "",  # default: CHECKPOINT.DIR
    "LAYER": "",  # extracted layer to score (default: the only one, e.g. res5avg)
    "CHART": True,
    "CAP_CPU_WORKERS": True,  # on CPU: loader workers <= cores left beside the forward, torch threads = core share
}
ENGINE_NAME = "ris"
_MARKER = "EXTRACTED"


def ris_cfg(cfg) -> dict:
    return with_defaults(cfg.get("RIS", {}), RIS_DEFAULTS, "config.RIS")


@register_config_validator
def _validate_ris(config):
    if "RIS" not in config:
        return
    r = ris_cfg(config)
    ks = list(r["TOPK"])
    if not ks or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in ks):
        raise ConfigError(f"config.RIS.TOPK must be a list of integers >= 1, got {ks!r}")
    if not isinstance(r["CAP_CPU_WORKERS"], bool):
        raise ConfigError(f"config.RIS.CAP_CPU_WORKERS must be true or false, got {r['CAP_CPU_WORKERS']!r}")
    sources = list(config["DATA"]["TEST"].get("DATA_SOURCES", []) or [])
    paths = list(config["DATA"]["TEST"].get("DATA_PATHS", []) or [])
    if sources != ["ris_manifest"]:
        raise ConfigError(f"config.DATA.TEST.DATA_SOURCES must be [ris_manifest] for RIS, got {sources}")
    if len(paths) != 1:
        raise ConfigError("config.DATA.TEST.DATA_PATHS must name one RIS manifest, e.g. "
                          "config.DATA.TEST.DATA_PATHS=[/data/ris/aloi_viewpoint.json] "
                          "(write it with tools/build_ris_trajectories.py)")
    if not os.path.exists(paths[0]):
        raise ConfigError(f"config.DATA.TEST.DATA_PATHS: {paths[0]} does not exist; write it with "
                          "tools/build_ris_trajectories.py")


class ExtractionProgress:
    """Log lines (on the quiet console too) while a CPU extraction runs: every ``every``
    seconds and at the end, with images done, rate and ETA of this rank's shard."""

    def __init__(self, num_batches: int, enabled: bool = True, every: float = 15.0):
        import time

        self.clock = time.time
        self.num_batches, self.enabled, self.every = num_batches, enabled, every
        self.batches = self.images = 0
        self.t0 = self.last = self.clock()

    def step(self, images: int):
        self.batches += 1
        self.images += images
        now = self.clock()
        if not self.enabled or (now - self.last < self.every and self.batches < self.num_batches):
            return
        self.last = now
        rate = self.batches / max(now - self.t0, 1e-9)
        eta = int((self.num_batches - self.batches) / rate) if rate > 0 else 0
        from vissl_ext.utils.console import say

        say(f"features: batch {self.batches}/{self.num_batches} ({self.images} images of this rank), "
            f"{rate * self.images / self.batches:.1f} images/s, ETA {eta // 60}:{eta % 60:02d}")


def extract_cpu(trainer, output_folder: str) -> dict:
    """SelfSupervisionTrainer.extract without its GPU assertion: tensors stay on the task's
    device. Feature files are written by the host's own _save_extracted_features. Returns
    timings: total seconds (setup included), seconds in the model's forward, images."""
    start = time.perf_counter()
    task = trainer.task
    task.prepare_extraction(pin_memory=False)
    trainer._add_dummy_layer()
    task.init_distributed_data_parallel_model()
    from vissl.models.model_helpers import get_trunk_output_feature_names

    feat_names = get_trunk_output_feature_names(trainer.cfg.MODEL) or ["heads"]
    rank = torch.distributed.get_rank()
    threshold = trainer.cfg.EXTRACT_FEATURES.CHUNK_THRESHOLD
    forward, images, waiting = 0.0, 0, 0.0
    setup = time.perf_counter() - start

    def _batches(loader):
        """The loader's batches, timing the wait. Loading in this process (no workers) runs on one
        torch thread: its many small tensor ops on a multi-threaded pool cost ~10x more (workers
        get one thread from torch already); the forward keeps all threads."""
        nonlocal waiting
        threads = torch.get_num_threads()
        in_process = getattr(loader, "num_workers", 0) == 0
        it = iter(loader)
        while True:
            t0 = time.perf_counter()
            if in_process:
                torch.set_num_threads(1)
            try:
                sample = next(it)
            except StopIteration:
                return
            finally:
                torch.set_num_threads(threads)
                waiting += time.perf_counter() - t0
            yield sample

    for split in task.available_splits:
        task.model.eval()
        feats = {n: {} for n in feat_names}
        targets = {n: {} for n in feat_names}
        chunk, buffered = 0, 0
        loader = task.dataloaders[split.lower()]
        progress = ExtractionProgress(len(loader), enabled=rank == 0)
        for sample in _batches(loader):
            inds = torch.cat(sample["data_idx"]).numpy()
            labels = torch.cat(sample["label"]).numpy()
            data = sample["data"]
            batch = (data[0] if len(data) == 1 else torch.cat(data)).to(task.device)  # no copy for one tensor
            t0 = time.perf_counter()
            with torch.no_grad():
                out = task.model(batch)
            forward += time.perf_counter() - t0
            out = trainer._flatten_features_list(out)
            for num, name in enumerate(feat_names):
                f = out[num].cpu().numpy()
                for j, idx in enumerate(inds):
                    feats[name][idx] = f[j]
                    targets[name][idx] = labels[j].reshape(-1)
            buffered += len(inds)
            images += len(inds)
            progress.step(len(inds))
            if buffered >= threshold >= 0:
                trainer._save_extracted_features(feats, targets, rank, chunk, split, output_folder)
                for n in feat_names:
                    feats[n].clear()
                    targets[n].clear()
                chunk, buffered = chunk + 1, 0
        trainer._save_extracted_features(feats, targets, rank, chunk, split, output_folder)
    trainer._cleanup_task()
    total = time.perf_counter() - start
    logging.info(f"RIS extraction (rank {rank}): {images} images in {total:.1f} s, model forward {forward:.1f} s "
                 f"({100 * forward / max(total, 1e-9):.0f} %), setup {setup:.1f} s, waiting for data {waiting:.1f} s")
    return {"images": images, "seconds_total": total, "seconds_forward": forward, "seconds_setup": setup,
            "seconds_waiting_for_data": waiting}


def cpu_resources(cfg):
    """On CPU, give each process its share of the cores this job may use (torch threads), and
    loader workers only where cores are plenty: decoding + resizing an image costs ~3 ms on one
    thread, a ResNet-50 forward ~100+ ms per core, so with few cores the loading in the process
    costs a few percent, while workers compete with the forward for the same cores and each pays
    its start-up (imports, dataset unpickling)."""
    cores = default_threads()
    procs = max(1, int(cfg.DISTRIBUTED.NUM_PROC_PER_NODE))
    share = max(1, cores // procs)
    torch.set_num_threads(share)
    workers = int(cfg.DATA.NUM_DATALOADER_WORKERS)
    cap = 0 if share <= 4 else max(1, share // 8)
    if workers > cap:
        logging.info(f"RIS on CPU: {cores} cores for {procs} process(es): {share} torch threads each, "
                     f"loader workers {workers} -> {cap}")
        cfg.DATA.NUM_DATALOADER_WORKERS = cap


def check_params_file(cfg):
    """VISSL skips checkpoint weights it cannot match with a log line ("Not found ... not
    initialized"), which would score a random trunk. Fail early instead when a ResNet
    checkpoint in VISSL's format has no trunk weights under the expected names."""
    params = cfg.MODEL.WEIGHTS_INIT.PARAMS_FILE
    if not params or cfg.MODEL.TRUNK.NAME != "resnet" or cfg.MODEL.WEIGHTS_INIT.STATE_DICT_KEY_NAME != "classy_state_dict":
        return
    ckpt = torch_load(params, flag_hint=False)  # safe (weights_only); the launcher's config check loaded it already
    try:
        trunk = ckpt["classy_state_dict"]["base_model"]["model"]["trunk"]
    except (KeyError, TypeError):
        raise ValueError(f"{params}: not a VISSL checkpoint (no classy_state_dict.base_model.model.trunk); "
                         "set config.MODEL.WEIGHTS_INIT.STATE_DICT_KEY_NAME / APPEND_PREFIX for other formats") from None
    if not any(k.startswith("_feature_blocks.") for k in trunk):
        raise ValueError(f"{params}: trunk weights are not named _feature_blocks.* (e.g. {list(trunk)[:2]}); "
                         "VISSL would leave the trunk randomly initialised")


def model_name(cfg, r: dict) -> str:
    if r["MODEL_NAME"]:
        return str(r["MODEL_NAME"])
    params = cfg.MODEL.WEIGHTS_INIT.PARAMS_FILE
    return os.path.splitext(os.path.basename(params))[0] if params else "random_init"


def score_extracted(cfg, feature_dir: str, out_dir: str) -> dict:
    """Rank 0: merge the extracted shards, compute RIS, write JSON / table / chart."""
    from vissl_ext.invariance.features_io import load_features
    from vissl_ext.invariance.manifest import load_ris_manifest
    from vissl_ext.invariance.report import format_table, plot_chart, result_record, write_result
    from vissl_ext.invariance.ris import compute_ris

    r = ris_cfg(cfg)
    manifest = load_ris_manifest(cfg.DATA.TEST.DATA_PATHS[0])
    feats = load_features(feature_dir, num_images=len(manifest.entries), layer=r["LAYER"] or None)
    on_gpu = cfg.MACHINE.DEVICE == "gpu" and torch.cuda.is_available()  # exact selection on the device
    result = compute_ris(feats, manifest.trajectories, manifest.classes, topk=list(r["TOPK"]),
                         device=torch.device("cuda", torch.cuda.current_device()) if on_gpu else None)
    record = result_record(result, model_name(cfg, r), manifest.set, manifest.invariance,
                           manifest=manifest.path, features=os.path.abspath(feature_dir),
                           params_file=cfg.MODEL.WEIGHTS_INIT.PARAMS_FILE)
    path = write_result(out_dir, record)
    table = format_table([record])
    logging.info(f"RIS results written to {path}")
    print(table, flush=True)
    if r["CHART"]:
        plot_chart([record], os.path.join(out_dir, f"ris_{manifest.set}.png"))
    return record


def ris_main(cfg, dist_run_id: str, checkpoint_folder: str, local_rank: int = 0, node_id: int = 0):
    from vissl.trainer import SelfSupervisionTrainer
    from vissl.utils.env import set_env_vars
    from vissl.utils.logger import setup_logging, shutdown_logging
    from vissl.utils.misc import set_seeds, setup_multiprocessing_method

    set_env_vars(local_rank, node_id, cfg)
    rank = int(os.environ["RANK"])
    setup_logging(__name__, output_dir=checkpoint_folder, rank=rank)
    setup_multiprocessing_method(cfg.MULTI_PROCESSING_METHOD)
    set_seeds(cfg, rank)
    if cfg.MACHINE.DEVICE == "gpu" and torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    out_dir = ris_cfg(cfg)["OUTPUT_DIR"] or checkpoint_folder
    feature_dir = os.path.join(out_dir, "features")
    os.makedirs(feature_dir, exist_ok=True)
    check_params_file(cfg)
    if ris_cfg(cfg)["CAP_CPU_WORKERS"] and (cfg.MACHINE.DEVICE != "gpu" or not torch.cuda.is_available()):
        cpu_resources(cfg)
    trainer = SelfSupervisionTrainer(cfg, dist_run_id)
    if os.path.exists(os.path.join(feature_dir, _MARKER)):
        logging.info(f"{feature_dir}: features already extracted, scoring them (delete {_MARKER} to redo)")
    else:
        timing = {}
        if trainer.task.device.type == "cuda":
            trainer.extract(output_folder=feature_dir)  # the host's flow, unchanged
        else:
            timing = extract_cpu(trainer, feature_dir)
        torch.distributed.barrier()
        if rank == 0:  # the marker: features of every rank written (+ rank 0's timings)
            with open(os.path.join(feature_dir, _MARKER), "w") as f:
                json.dump({"complete": True, "rank0": timing}, f)
    torch.distributed.barrier()
    if rank == 0:
        score_extracted(cfg, feature_dir, out_dir)
    torch.distributed.barrier()
    shutdown_logging()


def _register_engine():
    from vissl.engines.engine_registry import _ENGINE_REGISTRY, Engine, register_engine
    from vissl.hooks import default_hook_generator

    if ENGINE_NAME in _ENGINE_REGISTRY:  # re-import in a spawned worker / under another name
        return _ENGINE_REGISTRY[ENGINE_NAME]

    @register_engine(ENGINE_NAME)
    class RISEngine(Engine):
        def run_engine(self, cfg, dist_run_id: str, checkpoint_path: str, checkpoint_folder: str,
                       local_rank: int = 0, node_id: int = 0,
                       hook_generator: Callable[[Any], List] = default_hook_generator):
            ris_main(cfg, dist_run_id, checkpoint_folder, local_rank=local_rank, node_id=node_id)

    return RISEngine


RISEngine = _register_engine()
