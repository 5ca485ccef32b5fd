"""ADE20K semantic segmentation with detectron2 on a frozen VISSL trunk (paper Table 3).

    python tools/train_ade20k_segmentation.py \
        --dataset-root /data/ADEChallengeData2016 \
        --weights checkpoints/model_final_checkpoint_phase199.torch \
        --num-gpus 8 OUTPUT_DIR ./output/ade20k_region_tracker

--weights takes a VISSL checkpoint (converted to <OUTPUT_DIR>/trunk_d2.pkl) or detectron2 weights.
The ADE20K labels are checked and mapped once into --prepared-dir (default: beside the dataset when
writable, else <OUTPUT_DIR>/ade20k_prepared); later runs reuse them. Trailing KEY VALUE pairs
override the detectron2 config (configs/detectron2/ade20k_sem_seg_frozen_R50.yaml by default).
Writes <OUTPUT_DIR>/results.json (mIoU, pACC, ...). Other flags: --eval-only, --resume,
--num-gpus/--num-machines/--dist-url (detectron2's launcher).
"""
import argparse
import json
import os
import sys

import vissl_ext.segmentation  # noqa: F401  (detectron2 compat fixes, before detectron2 imports)
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.engine import default_argument_parser, default_setup, launch
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from vissl_ext.cli.common import output_dir, run_main
from vissl_ext.utils.safe_load import add_trust_pickle_flag
from vissl_ext.segmentation import ade20k
from vissl_ext.segmentation.safe_checkpointer import install as install_safe_checkpointer
from vissl_ext.segmentation.train import (DEFAULT_CONFIG, Trainer, check_trunk_loaded, load_weights_file,
                                          prepare_weights, setup_cfg)
from vissl_ext.utils.atomic_io import write_json_atomic


def parse_args(argv=None):
    p = default_argument_parser(epilog=__doc__)
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.set_defaults(config_file=DEFAULT_CONFIG)
    p.add_argument("--dataset-root", required=True, help="ADEChallengeData2016 folder (or its parent)")
    p.add_argument("--prepared-dir", default="", help="where mapped labels + dataset lists go (see above)")
    p.add_argument("--weights", default="", help="VISSL checkpoint or detectron2 weights of the trunk")
    p.add_argument("--strict", action="store_true", help="a bad label PNG is an error instead of a counted skip")
    p.add_argument("--no-progress", action="store_true")
    add_trust_pickle_flag(p)
    return p.parse_args(argv)


def _default_prepared_dir(dataset_root: str, output_dir: str) -> str:
    root = ade20k.find_root(dataset_root)
    return root if os.access(root, os.W_OK) else os.path.join(output_dir, "ade20k_prepared")


def train_worker(args):
    """Runs in every worker (detectron2's launch)."""
    install_safe_checkpointer(trust_pickle=args.trust_pickle)  # this worker's detectron2 loads
    cfg = setup_cfg(args.config_file, args.opts)
    default_setup(cfg, args)
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="vissl_ext")
    ade20k.register(args.prepared_dir)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        results = Trainer.test(cfg, model)
    else:
        trainer = Trainer(cfg)
        trainer.resume_or_load(resume=args.resume)
        if trainer.start_iter == 0:
            check_trunk_loaded(trainer.model, cfg.MODEL.WEIGHTS, trust_pickle=args.trust_pickle)
        trainer.train()
        # DefaultTrainer.train() returns the final evaluation only when TEST.EXPECTED_RESULTS is set
        results = getattr(trainer, "_last_eval_results", None)
    if comm.is_main_process() and results:
        write_json_atomic(os.path.join(cfg.OUTPUT_DIR, "results.json"), results, indent=1)
        print(json.dumps({k: {m: v[m] for m in ("mIoU", "pACC", "mACC", "fwIoU") if m in v}
                          for k, v in results.items()}))
    return results


def run(args):
    """Prepare labels and weights once, then train (or evaluate) in detectron2's workers;
    returns the evaluation results of the main process (None elsewhere)."""
    cfg = setup_cfg(args.config_file, args.opts)  # the parent only needs OUTPUT_DIR and dataset names
    output_dir(cfg.OUTPUT_DIR)
    # One process checks and converts weights (a crafted file fails here, with one line) and
    # prepares labels before the workers start.
    weights = prepare_weights(args.weights, cfg.OUTPUT_DIR, args.trust_pickle) if args.weights else ""
    if not weights and cfg.MODEL.WEIGHTS and os.path.isfile(cfg.MODEL.WEIGHTS):
        load_weights_file(cfg.MODEL.WEIGHTS, args.trust_pickle)
    args.prepared_dir = args.prepared_dir or _default_prepared_dir(args.dataset_root, cfg.OUTPUT_DIR)
    ade20k.prepare(args.dataset_root, args.prepared_dir, strict=args.strict, progress=not args.no_progress)
    if weights:
        args.opts = list(args.opts) + ["MODEL.WEIGHTS", weights]
    elif not cfg.MODEL.WEIGHTS and not args.resume:
        print("warning: no --weights and no MODEL.WEIGHTS: the trunk is RANDOMLY initialised", file=sys.stderr)
    return launch(train_worker, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
                  dist_url=args.dist_url, args=(args,))


def main(argv=None) -> int:
    return run_main(parse_args, run, argv, shown=None)  # the workers print the results
