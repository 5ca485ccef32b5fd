"""The study file: which models, which evaluations, where to compute (tools/run_study.py).

    models:
      - {name: "Random init", kind: random, seed: 0}                   # VISSL ResNet-50, random weights
      - {name: "Region Tracker", kind: vissl, checkpoint: ck/model_final_checkpoint_phase199.torch}
      - {name: "Sup. R50", kind: torchvision, weights: resnet50.pth}    # a ResNet checkpoint, any layout of docs/export.md
      - {name: "FT s0", group: "Frame Temporal", kind: pretrain, seed: 0,  # trained by the runner on train_data
         config: pretrain/mini/frame_temporal, overrides: [config.OPTIMIZER.num_epochs=4]}
    evaluations:
      - {name: aloi_viewpoint, kind: ris, manifest: /data/ris/aloi_viewpoint.json}
      - {name: "VOC07 SVM", kind: voc07_svm, overrides: [...]}
      - {name: "IN-1k linear", kind: linear, config: benchmark/linear_image_classification/..., overrides: [...]}
      - {name: ADE20K, kind: ade20k, dataset_root: /data/ADEChallengeData2016, args: [--num-gpus, "8"]}
      - {name: viewpoint, kind: ris, folder: /data/turntable/eval, invariance: viewpoint, config: benchmark/ris/mini}
      - {name: kNN, kind: knn, folder: /data/turntable/eval, config: benchmark/ris/mini, args: [--stride, "6"]}
      - {name: DAVIS, kind: davis, dataset_root: /data/DAVIS, args: [--short-side, "240"]}  # label propagation, J&F
    compute: {backend: local, jobs: 2}  # or slurm (submitit: partition, time_hours, ...) / submitit_local;
                                        # jobs: local cells run at once (one CPU thread each is best)
    overrides: []                       # VISSL overrides for every VISSL-engine cell (e.g. CPU settings)
    train_data: /data/turntable/train   # pretrain models: DATA_PATHS (a folder of clips or of frame folders)
    train_overrides: []                 # VISSL overrides for every pretrain model
    generate:                           # optional: procedural turntables written before anything runs
      - {out: "{out}/data/train", objects: 300, poses: 24, size: 64, seed: 0}
    compare: [["Frame Temporal", "Baseline"]]   # paired per-seed differences (group a - group b)

Models sharing a ``group`` (default: their name) are seeds of one method: the tables then give
mean +- 95% t-interval per group. ``{out}`` in a path is the --out folder of the run.
"""
import os
from dataclasses import dataclass, field
from typing import List

MODEL_KINDS = ("vissl", "torchvision", "random", "pretrain")
EVAL_KINDS = ("ris", "linear", "voc07_svm", "ade20k", "knn", "davis")
BACKENDS = ("local", "slurm", "submitit_local")


class StudyError(ValueError):
    """A wrong study file: the message names the file and the entry."""


@dataclass
class Model:
    name: str
    kind: str
    checkpoint: str = ""  # vissl
    weights: str = ""  # torchvision
    seed: int = 0  # random, pretrain (SEED_VALUE); paired differences match models by seed
    depth: int = 50
    config: str = ""  # pretrain: the VISSL pretrain config; random: a config whose MODEL builds the trunk
    overrides: List[str] = field(default_factory=list)  # pretrain / random: VISSL overrides of `config`
    group: str = ""  # the method this model is a seed of (default: its name)


@dataclass
class Evaluation:
    name: str
    kind: str
    manifest: str = ""  # ris
    folder: str = ""  # ris: object folders built into a manifest (instead of `manifest`); knn: the data
    invariance: str = "custom"  # ris with `folder`: the invariance the manifest names
    config: str = ""  # linear (a host config), voc07_svm (default: the host's VOC07 SVM config),
    #                   ris (default benchmark/ris/custom), knn (a config whose MODEL builds the trunk)
    dataset_root: str = ""  # ade20k; davis (a DAVIS-layout folder: JPEGImages/480p, Annotations/480p)
    overrides: List[str] = field(default_factory=list)  # VISSL overrides (ris, linear, voc07_svm)
    args: List[str] = field(default_factory=list)  # extra command-line words (ade20k: flags, then KEY VALUE pairs;
    #                                                 knn, davis: flags of their tool)
    metric: str = ""  # linear: head name (default: best head); voc07_svm: layer (default: best layer)


@dataclass
class Study:
    path: str
    models: List[Model]
    evaluations: List[Evaluation]
    compute: dict
    overrides: List[str]
    train_data: str = ""
    train_overrides: List[str] = field(default_factory=list)
    generate: List[dict] = field(default_factory=list)
    compare: List[List[str]] = field(default_factory=list)

    def group_of(self, name: str) -> str:
        return next(m.group or m.name for m in self.models if m.name == name)


def _entries(doc, key, path):
    items = doc.get(key)
    if not isinstance(items, list) or not items:
        raise StudyError(f"{path}: '{key}' must be a non-empty list")
    return items


def _build(cls, d: dict, where: str, kinds):
    if not isinstance(d, dict):
        raise StudyError(f"{where}: must be a mapping, got {d!r}")
    known = set(cls.__dataclass_fields__)
    unknown = set(d) - known
    if unknown:
        raise StudyError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    if "name" not in d or "kind" not in d:
        raise StudyError(f"{where}: needs 'name' and 'kind'")
    if d["kind"] not in kinds:
        raise StudyError(f"{where}: kind must be one of {list(kinds)}, got {d['kind']!r}")
    for k in ("overrides", "args"):
        if k in d and not (isinstance(d[k], list) and all(isinstance(x, (str, int, float)) for x in d[k])):
            raise StudyError(f"{where}.{k}: must be a list of strings")
    obj = cls(**{k: ([str(x) for x in v] if k in ("overrides", "args") else v) for k, v in d.items()})
    obj.name = str(obj.name)
    if not obj.name or any(c in obj.name for c in "/\\") or obj.name in (".", ".."):
        raise StudyError(f"{where}: name {obj.name!r} must be non-empty and hold no path separator")
    return obj


def _check_file(p: str, where: str, what: str):
    if not p:
        raise StudyError(f"{where}: needs '{what}'")
    if not os.path.exists(p):
        raise StudyError(f"{where}.{what}: {p} does not exist")


def load_study(path: str) -> Study:
    """Parse and check a study file; every problem is a StudyError naming the file and entry."""
    import yaml

    try:
        with open(path) as f:
            doc = yaml.safe_load(f)
    except FileNotFoundError:
        raise StudyError(f"study file {path} does not exist")
    except yaml.YAMLError as e:
        raise StudyError(f"{path}: not valid YAML ({' '.join(str(e).split())})")  # one line
    if not isinstance(doc, dict):
        raise StudyError(f"{path}: must be a mapping with 'models' and 'evaluations'")
    top = {"models", "evaluations", "compute", "overrides", "train_data", "train_overrides", "generate", "compare"}
    unknown = set(doc) - top
    if unknown:
        raise StudyError(f"{path}: unknown top-level keys {sorted(unknown)}; known: {', '.join(sorted(top))}")
    base = os.path.dirname(os.path.abspath(path))

    def rel(p):  # paths in the file are relative to the file; {out} is filled in by the runner
        return p if not p or os.path.isabs(p) or p.startswith("{out}") else os.path.normpath(os.path.join(base, p))

    models = [_build(Model, d, f"{path}: models[{i}]", MODEL_KINDS) for i, d in enumerate(_entries(doc, "models", path))]
    evals = [_build(Evaluation, d, f"{path}: evaluations[{i}]", EVAL_KINDS)
             for i, d in enumerate(_entries(doc, "evaluations", path))]
    for what, items in (("model", models), ("evaluation", evals)):
        names = [x.name for x in items]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise StudyError(f"{path}: {what} names must be unique, repeated: {dup}")
    # the file each kind needs: (entries, kind -> attribute); relative paths are made absolute first
    needed = ((models, "models", {"vissl": "checkpoint", "torchvision": "weights"}, ("checkpoint", "weights")),
              (evals, "evaluations", {"ris": "manifest", "ade20k": "dataset_root", "knn": "folder", "davis": "dataset_root"},
               ("manifest", "dataset_root", "folder")))
    for items, key, by_kind, attrs in needed:
        for i, x in enumerate(items):
            for a in attrs:
                setattr(x, a, rel(getattr(x, a)))
            what = by_kind.get(x.kind)
            if x.kind == "ris" and x.folder:
                what = "folder"
            if what and not getattr(x, what).startswith("{out}"):  # {out}/...: made by this study (generate)
                _check_file(getattr(x, what), f"{path}: {key}[{i}] ({x.name})", what)
    for i, m in enumerate(models):
        if m.kind == "pretrain" and not m.config:
            raise StudyError(f"{path}: models[{i}] ({m.name}): a pretrain model needs 'config' (e.g. pretrain/mini/frame_temporal)")
        if not isinstance(m.seed, int) or isinstance(m.seed, bool) or m.depth not in (18, 34, 50, 101, 152):
            raise StudyError(f"{path}: models[{i}] ({m.name}): seed must be an integer and depth one of 18, 34, 50, 101, 152")
    for i, e in enumerate(evals):
        where = f"{path}: evaluations[{i}] ({e.name})"
        if e.kind == "linear" and not e.config:
            raise StudyError(f"{where}: needs 'config' (a VISSL benchmark config, e.g. "
                             f"benchmark/linear_image_classification/imagenet1k/eval_resnet_8gpu_transfer_in1k_linear)")
    compute = dict(doc.get("compute") or {"backend": "local"})
    backend = compute.get("backend", "local")
    if backend not in BACKENDS:
        raise StudyError(f"{path}: compute.backend must be one of {list(BACKENDS)}, got {backend!r}")
    known_c = {"backend", "partition", "time_hours", "mem_gb", "cpus_per_task", "gpus_per_task", "comment",
               "constraint", "job_name", "array_parallelism", "jobs"}
    if set(compute) - known_c:
        raise StudyError(f"{path}: unknown compute keys {sorted(set(compute) - known_c)}; known: {sorted(known_c)}")
    jobs = compute.get("jobs", 1)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise StudyError(f"{path}: compute.jobs must be a positive integer (cells run at once locally), got {jobs!r}")
    if jobs > 1 and backend != "local":
        raise StudyError(f"{path}: compute.jobs is for the local backend; {backend} runs one job per cell "
                         f"(array_parallelism caps them)")
    if backend == "slurm" and not compute.get("partition"):
        raise StudyError(f"{path}: compute.partition is needed for the slurm backend")
    overrides = doc.get("overrides") or []
    if not (isinstance(overrides, list) and all(isinstance(x, str) for x in overrides)):
        raise StudyError(f"{path}: overrides must be a list of strings")
    train_overrides = doc.get("train_overrides") or []
    if not (isinstance(train_overrides, list) and all(isinstance(x, str) for x in train_overrides)):
        raise StudyError(f"{path}: train_overrides must be a list of strings")
    train_data = rel(str(doc.get("train_data") or ""))
    if any(m.kind == "pretrain" for m in models):
        if not train_data:
            raise StudyError(f"{path}: pretrain models need 'train_data' (a folder of clips or of frame folders, or a manifest)")
        if not train_data.startswith("{out}"):
            _check_file(train_data, path, "train_data")
    generate = doc.get("generate") or []
    gen_keys = {"out", "objects", "poses", "size", "seed", "start"}
    if not isinstance(generate, list):
        raise StudyError(f"{path}: generate must be a list of turntable sets")
    for i, g in enumerate(generate):
        if not isinstance(g, dict) or "out" not in g or set(g) - gen_keys or \
                not all(isinstance(g[k], int) and not isinstance(g[k], bool) for k in g if k != "out"):
            raise StudyError(f"{path}: generate[{i}] must map 'out' and integer {sorted(gen_keys - {'out'})} "
                             f"(got {g!r})")
        g["out"] = rel(str(g["out"]))
    groups = {m.group or m.name for m in models}
    compare = doc.get("compare") or []
    if not isinstance(compare, list) or not all(isinstance(c, list) and len(c) == 2 for c in compare):
        raise StudyError(f"{path}: compare must be a list of [group a, group b] pairs")
    for a, b in compare:
        for g in (a, b):
            if g not in groups:
                raise StudyError(f"{path}: compare names group {g!r}, not a model group ({sorted(groups)})")
    return Study(os.path.abspath(path), models, evals, compute, overrides, train_data, train_overrides, generate, compare)
