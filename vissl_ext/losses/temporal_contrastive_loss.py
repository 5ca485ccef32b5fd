"""``temporal_contrastive_loss``: the objective of the Region Tracker and Ground Truth Tracks
models. A frame term, MoCo v2's InfoNCE between the two frames of a temporal pair
(query t_i(z_i), key t_j(z_{i+k}) from the momentum encoder, a queue of past keys), plus a
region term, InfoNCE between the ROIAligned embeddings of matched boxes (query regions on
z_i, key regions on z_{i+k} from the momentum encoder) against a queue of past region keys:

    loss = frame_weight * L_frame + region_weight * L_region (+ shot_weight * L_shot)

The shot term (``shot_weight`` > 0, batches of shot_moco_collator): InfoNCE between the same
query embedding t_i(z_i) and the momentum key of z_j, a frame of *another shot of the same
video*, against its own queue of past shot keys. Its own queue, not the frame queue: each
queue then holds keys of the kind its term compares against, and the two terms can use
different sizes and temperatures; like the region term, it is registered only when used, so
checkpoints of the other configs keep their keys. With ``region_weight`` 0 the model may be a
plain frame model (one output, e.g. pretrain/frame_temporal's ResNet + MLP).

The model is ``resnet_regions`` with two heads (MLP on the pooled res5 features, and
``dense_region_head`` on the region feature map); the momentum encoder, its keys and the boxes
come from TemporalContrastiveHook, as VISSL's MoCoHook does for moco_loss. Queues are
gathered across ranks (identical on every rank) and saved in checkpoints with the encoder.

Under DDP the loss is that of the global batch. The frame and shot terms are means over each
rank's B queries; ranks hold equal B, so DDP's average of the ranks' gradients is the gradient of
the mean over all W*B queries. Ranks hold different numbers of region pairs, so the region term
of rank r is W * (sum of its pairs' cross-entropies) / N, N the pair count of all ranks: DDP's
average over the W ranks then gives the gradient of (sum over all N pairs) / N, each pair
weighing 1/N whichever rank holds it, and the mean of the ranks' reported losses (VISSL's
all-reduced loss) is the global batch's. In one process this is the plain mean.

Host syncs: the loss reads no tensor value on the host in a step. Queue pointers are mirrored on
the host; the pair counts of other ranks come from the hook (shuffle-BN) or one all_gather read
once; the finite check reads the loss value VISSL's train step has already read
(raise_if_nonfinite, called by the hook in on_loss_and_meter).
"""
import logging
import math
import pprint
from typing import List

import torch
import torch.distributed as dist
from classy_vision.losses import ClassyLoss
from torch import nn
from torchvision.ops import roi_align

from vissl_ext.config import ConfigError, need_int, need_number, register_config_validator, with_defaults
from vissl_ext.registry import register_loss

DEFAULTS = dict(embedding_dim=128, queue_size=65536, momentum=0.999, temperature=0.2, frame_weight=1.0,
                region_embedding_dim=128, region_queue_size=65536, region_temperature=0.2, region_weight=1.0,
                roi_output_size=3)
# the shot-level term (VIVI's shot level, pretrain/shot_temporal): off unless shot_weight > 0
SHOT_DEFAULTS = dict(shot_weight=0.0, shot_queue_size=16384, shot_temperature=0.2)
DEFAULTS.update(SHOT_DEFAULTS)


def loss_settings(user) -> dict:
    """config.LOSS.temporal_contrastive_loss merged over DEFAULTS (VISSL's ``name`` key dropped)."""
    user = {k: v for k, v in dict(user or {}).items() if k != "name"}
    return with_defaults(user, DEFAULTS, "config.LOSS.temporal_contrastive_loss")


def pool_regions(feature_map: torch.Tensor, rois: torch.Tensor, output_size: int, spatial_scale: float,
                 project=None) -> torch.Tensor:
    """L2-normalised region embeddings [K, D]: ROIAlign of each roi (batch index, x1, y1, x2, y2
    in input pixels) on the map, averaged over the output grid, then ``project`` ([K, C] -> [K, D],
    the region head's MLP under pool_then_project) when given. ROIAlign runs in fp32 whatever the
    autocast: boxes cast to fp16 would be rounded to 0.125 px above 128 px (1 px in bf16)."""
    rois = rois.to(device=feature_map.device, dtype=torch.float32)
    pooled = roi_align(feature_map.float(), rois, output_size=output_size, spatial_scale=spatial_scale,
                       sampling_ratio=2, aligned=True).mean(dim=(2, 3))
    return nn.functional.normalize(pooled if project is None else project(pooled), dim=1)


def check_region_map(fmap: torch.Tensor, input_hw, scale: float, what: str):
    """The map must be the trunk's strided map of the input on both axes: with a trunk of another
    stride every region would be pooled from the wrong place without any error."""
    stride = round(1 / scale)
    want = tuple(math.ceil(int(s) / stride) for s in input_hw)
    if tuple(fmap.shape[-2:]) != want:
        raise ValueError(f"temporal_contrastive_loss: the region map of the {what} is {tuple(fmap.shape[-2:])} for "
                         f"an input of {tuple(int(s) for s in input_hw)}, but config.MODEL.TRUNK.REGION_FEATURE has "
                         f"stride {stride} (expected {want})")


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def gather_counts(local: List[int], device) -> List[List[int]]:
    """Every rank's list of local counts (rank order), read on the host: one sync."""
    t = torch.tensor(local, dtype=torch.long).to(device, non_blocking=True)
    out = [torch.zeros_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(out, t)
    return torch.stack(out).tolist()


def gather_variable(x: torch.Tensor, counts: List[int] = None) -> torch.Tensor:
    """Concatenate the rows of x from every rank (rank order); ranks may hold different counts.
    counts: every rank's row count when the caller knows them (else gathered: one host sync)."""
    if world_size() == 1:
        return x
    if counts is None:
        counts = [c[0] for c in gather_counts([x.shape[0]], x.device)]
    padded = x.new_zeros((max(max(counts), 1),) + tuple(x.shape[1:]))
    padded[: x.shape[0]] = x
    out = [torch.zeros_like(padded) for _ in counts]
    dist.all_gather(out, padded)
    return torch.cat([o[:c] for o, c in zip(out, counts)], 0)


def ring_write(queue: torch.Tensor, ptr: torch.Tensor, keys: torch.Tensor, p: int = None) -> int:
    """Write keys [n, D] into the columns of queue [D, Q] from ptr on, wrapping around; the
    newest Q keys win when n > Q. p: ptr's value when the caller mirrors it on the host (else it
    is read: a sync). Returns the new pointer."""
    Q = queue.shape[1]
    n = keys.shape[0]
    if p is None:
        p = int(ptr)
    if n == 0:
        return p
    if n > Q:
        keys = keys[-Q:]
        n = Q
    cols = keys.T.to(queue.dtype)
    first = min(n, Q - p)
    queue[:, p: p + first] = cols[:, :first]
    queue[:, : n - first] = cols[:, first:]
    p = (p + n) % Q
    ptr.fill_(p)
    return p


def info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float,
             reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of each query against its key (positive, first) and the queue (negatives)."""
    l_pos = (q * k).sum(dim=1, keepdim=True)
    l_neg = q @ queue.clone().detach()
    logits = torch.cat([l_pos, l_neg], dim=1) / temperature
    return nn.functional.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device),
                                       reduction=reduction)


@register_loss("temporal_contrastive_loss")
class TemporalContrastiveLoss(ClassyLoss):
    def __init__(self, config: dict):
        super().__init__()
        c = loss_settings(config)
        self.loss_config = c
        # initial negatives from a fixed generator: VISSL seeds each rank differently, and the
        # queues must be identical on every rank from the first step on
        g = torch.Generator().manual_seed(0)
        self.register_buffer("queue", nn.functional.normalize(
            torch.randn(c["embedding_dim"], c["queue_size"], generator=g), dim=0))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))
        self.register_buffer("region_queue", nn.functional.normalize(
            torch.randn(c["region_embedding_dim"], c["region_queue_size"], generator=g), dim=0))
        self.register_buffer("region_queue_ptr", torch.zeros(1, dtype=torch.long))
        self.register_buffer("num_batches_without_regions", torch.zeros(1, dtype=torch.long))
        if c["shot_weight"] > 0:
            self.register_buffer("shot_queue", nn.functional.normalize(
                torch.randn(c["embedding_dim"], c["shot_queue_size"], generator=g), dim=0))
            self.register_buffer("shot_queue_ptr", torch.zeros(1, dtype=torch.long))
        self.shot_key = None
        # set by TemporalContrastiveHook.on_forward before each loss call
        self.moco_encoder = None
        self.checkpoint = None
        self.key = None
        self.region_key = None
        self.query_rois = None
        self.region_project = None  # the online region head's MLP under pool_then_project
        self.spatial_scale = None
        self.query_input_size = None
        # under shuffle-BN the hook has every rank's keys and counts already: {"keys": {name:
        # [all rows]}, "counts": {name: [rows of each rank]}} for key / region_key / shot_key
        self.gathered = None
        self.iteration = -1
        self.last_terms = {}
        self._ptrs = {}  # host mirror of the queue pointers: reading them is a sync

    @classmethod
    def from_config(cls, config):
        return cls(dict(config))

    def raise_if_nonfinite(self, loss_value: float):
        """Stop when the step's loss (as VISSL's train step read it on the host) is not finite,
        naming the term of this rank that is not: before the backward pass and the optimizer step,
        so no checkpoint holds it. Reads the terms on the host only then."""
        if math.isfinite(loss_value):
            return
        terms = {k: float(v) for k, v in self.last_terms.items() if isinstance(v, torch.Tensor)}
        bad = [f"the {k} term is {v}" for k, v in terms.items() if not math.isfinite(v)]
        what = "; ".join(bad) if bad else (f"the loss is {loss_value} (every term of this rank is finite: another "
                                            f"rank's is not)")
        raise FloatingPointError(
            f"temporal_contrastive_loss: {what} at iteration {self.iteration}; stopping before the optimizer step, "
            f"so no checkpoint holds it. Lower the learning rate or check the data of this step (empty or "
            f"degenerate boxes?)")

    def _everyone(self, local: dict):
        """(every rank's keys, every rank's counts) for each name of local: from the hook when it
        gathered them with the shuffle-BN unshuffle, else gathered here with one host read of the
        counts."""
        if world_size() == 1:
            return local, {n: [v.shape[0]] for n, v in local.items()}
        have = self.gathered or {"keys": {}, "counts": {}}
        keys, counts = dict(have["keys"]), dict(have["counts"])
        todo = [n for n in local if n not in keys]
        if any(n not in counts for n in todo):
            rows = gather_counts([local[n].shape[0] for n in todo], local[todo[0]].device)
            counts.update({n: [r[i] for r in rows] for i, n in enumerate(todo)})
        for n in todo:
            keys[n] = gather_variable(local[n], counts[n])
        return keys, counts

    def _enqueue(self, name: str, keys: torch.Tensor):
        self._ptrs[name] = ring_write(getattr(self, name), getattr(self, name + "_ptr"), keys, self._ptrs.get(name))

    def forward(self, output: List[torch.Tensor], target=None) -> torch.Tensor:
        c = self.loss_config
        if isinstance(output, torch.Tensor) and c["region_weight"] == 0:
            output = [output, None]  # a frame-only model: no region map, no region term
        if not isinstance(output, (list, tuple)) or len(output) != 2:
            raise ValueError("temporal_contrastive_loss expects the model outputs [frame embedding, region map]: "
                             "trunk resnet_regions with the heads [mlp, dense_region_head]")
        if self.key is None:
            raise RuntimeError("temporal_contrastive_loss: no key set; is TemporalContrastiveHook installed "
                               "(tools/run_distributed_engines.py installs it through vissl_ext's hook generator)?")
        frame_q, region_map = output
        q = nn.functional.normalize(frame_q, dim=1)
        loss_frame = info_nce(q, self.key, self.queue, c["temperature"])
        shot = self._shot_term(q)
        local = {"key": self.key}
        if self.region_key is not None:
            local["region_key"] = self.region_key
        if shot is not None:
            local["shot_key"] = self.shot_key
        everyone, counts = self._everyone(local)

        rois = self.query_rois
        if region_map is None:
            loss_region = loss_frame.new_zeros(())
        elif rois is not None and rois.shape[0] > 0:
            if self.query_input_size is not None:
                check_region_map(region_map, self.query_input_size, self.spatial_scale, "query view (input)")
            qr = pool_regions(region_map, rois, c["roi_output_size"], self.spatial_scale, self.region_project)
            # the global batch's mean over its N pairs, times W as DDP averages the W ranks' gradients
            loss_region = (info_nce(qr, self.region_key, self.region_queue, c["region_temperature"], "sum")
                           * (world_size() / sum(counts["region_key"])))
        else:
            # no region pair on this rank (all boxes cropped away): frame term alone; the zero
            # keeps the region head in the graph, as DDP needs every parameter to get a gradient
            loss_region = region_map.sum() * 0.0
            if self.region_project is not None:  # pool_then_project: the head's MLP is used here only
                loss_region = loss_region + self.region_project(region_map.new_zeros(1, region_map.shape[1])).sum() * 0.0
            self.num_batches_without_regions += 1
            logging.info(f"temporal_contrastive_loss: no region pair at iteration {self.iteration}")

        with torch.no_grad():
            for name, queue in (("key", "queue"), ("region_key", "region_queue"), ("shot_key", "shot_queue")):
                if name in everyone:
                    self._enqueue(queue, everyone[name])
        # device tensors, read on the host only when logged; "region" is this rank's share: the
        # mean over ranks is the global region term
        self.last_terms = {"frame": loss_frame.detach(), "region": loss_region.detach(),
                           "regions": int(rois.shape[0]) if rois is not None else 0}
        total = c["frame_weight"] * loss_frame + c["region_weight"] * loss_region
        if shot is not None:
            self.last_terms["shot"] = shot.detach()
            total = total + c["shot_weight"] * shot
        return total

    def _shot_term(self, q: torch.Tensor):
        """InfoNCE of the queries against the keys of their frames from another shot (None when
        the shot term is off)."""
        if self.loss_config["shot_weight"] <= 0:
            return None
        if self.shot_key is None or self.shot_key.shape[0] != q.shape[0]:
            raise RuntimeError("temporal_contrastive_loss: shot_weight > 0 but the batch has no shot keys for its "
                               "queries; use the video_shot_triplets source with COLLATE_FUNCTION=shot_moco_collator")
        return info_nce(q, self.shot_key, self.shot_queue, self.loss_config["shot_temperature"])

    def __repr__(self):
        return pprint.pformat({"name": "temporal_contrastive_loss", **self.loss_config}, indent=2)

    def load_state_dict(self, state_dict, *args, **kwargs):
        """As VISSL's MoCoLoss: before the momentum encoder exists (resume), keep the state for
        the hook to restore once it has built the encoder."""
        self._ptrs = {}  # the pointers change: read them again once
        if self.moco_encoder is None:
            self.checkpoint = state_dict
            logging.info("temporal_contrastive_loss: checkpoint stored until the momentum encoder is built")
        else:
            super().load_state_dict(state_dict, *args, **kwargs)


def _head_out_dim(head_param) -> int:
    return int(head_param[1]["dims"][-1])


def _resnet_channels(trunk_cfg, feature: str) -> int:
    depth = int(trunk_cfg.RESNETS.DEPTH)
    width = int(trunk_cfg.RESNETS.get("WIDTH_MULTIPLIER", 1))
    expansion = 4 if depth >= 50 else 1
    stage = {"res2": 0, "res3": 1, "res4": 2, "res5": 3}[feature]
    return 64 * (2 ** stage) * expansion * width


@register_config_validator
def validate_temporal_contrastive_config(config):
    """At compose time: the pieces that temporal_contrastive_loss needs fit together."""
    if config.LOSS.name != "temporal_contrastive_loss":
        return
    where = "config.LOSS.temporal_contrastive_loss"
    c = loss_settings(config.LOSS.get("temporal_contrastive_loss", {}))
    for key in ("temperature", "region_temperature", "shot_temperature"):
        need_number(c[key], f"{where}.{key}", low=0, low_open=True)
    for key in ("queue_size", "region_queue_size", "shot_queue_size", "roi_output_size", "embedding_dim",
                "region_embedding_dim"):
        need_int(c[key], f"{where}.{key}", 1)
    for key in ("frame_weight", "region_weight", "shot_weight"):
        need_number(c[key], f"{where}.{key}", low=0)
    if c["frame_weight"] + c["region_weight"] + c["shot_weight"] == 0:
        raise ConfigError(f"{where}: frame_weight, region_weight and shot_weight must not all be 0")
    need_number(c["momentum"], f"{where}.momentum", low=0, high=1, high_open=True)
    coll = config.DATA.TRAIN.COLLATE_FUNCTION
    if coll == "shot_moco_collator" or c["shot_weight"] > 0:
        _validate_shot_level(config, c, where, coll)
        return
    trunk = config.MODEL.TRUNK
    if trunk.NAME != "resnet_regions":
        raise ConfigError(f"{where} needs config.MODEL.TRUNK.NAME=resnet_regions (got {trunk.NAME}): it returns the "
                          f"region feature map next to the pooled features")
    heads = list(config.MODEL.HEAD.PARAMS)
    if len(heads) != 2 or heads[1][0] != "dense_region_head":
        raise ConfigError(f"{where} needs config.MODEL.HEAD.PARAMS = [[mlp, ...], [dense_region_head, ...]], one head "
                          f"per trunk output; got {[h[0] for h in heads]}")
    if _head_out_dim(heads[0]) != c["embedding_dim"] or _head_out_dim(heads[1]) != c["region_embedding_dim"]:
        raise ConfigError(f"{where}: embedding_dim={c['embedding_dim']} / region_embedding_dim={c['region_embedding_dim']} "
                          f"must equal the heads' output dims {_head_out_dim(heads[0])} / {_head_out_dim(heads[1])}")
    feature = trunk.get("REGION_FEATURE", "res4")
    if feature not in ("res2", "res3", "res4", "res5"):
        raise ConfigError(f"config.MODEL.TRUNK.REGION_FEATURE must be one of res2..res5, got {feature!r}")
    want = _resnet_channels(trunk, feature)
    if int(heads[1][1]["dims"][0]) != want:
        raise ConfigError(f"dense_region_head dims[0]={heads[1][1]['dims'][0]} but {feature} of ResNet-"
                          f"{trunk.RESNETS.DEPTH} has {want} channels")
    for split in ("TRAIN",):
        coll = config.DATA[split].COLLATE_FUNCTION
        if coll != "region_moco_collator":
            raise ConfigError(f"{where} needs config.DATA.{split}.COLLATE_FUNCTION=region_moco_collator (boxes in the batch), got {coll}")


def _validate_shot_level(config, c, where, coll):
    """pretrain/shot_temporal: frame + shot terms on a frame-only model (no region term yet)."""
    if coll != "shot_moco_collator":
        raise ConfigError(f"{where}.shot_weight={c['shot_weight']} needs config.DATA.TRAIN.COLLATE_FUNCTION="
                          f"shot_moco_collator (the frame of another shot in the batch), got {coll}; the shot term "
                          f"is not combined with region pairs")
    if c["shot_weight"] <= 0:
        raise ConfigError(f"{where}: shot_moco_collator batches carry shot keys but shot_weight is "
                          f"{c['shot_weight']}; set it > 0 (or use moco_collator)")
    if c["region_weight"] != 0:
        raise ConfigError(f"{where}.region_weight must be 0 with shot_moco_collator (no boxes in its batches), "
                          f"got {c['region_weight']}")
    sources = list(config.DATA.TRAIN.DATA_SOURCES)
    if sources != ["video_shot_triplets"]:
        raise ConfigError(f"config.DATA.TRAIN.DATA_SOURCES must be [video_shot_triplets] for the shot term "
                          f"(frames z_i, z_(i+k), and z_j from another shot), got {sources}")
    heads = list(config.MODEL.HEAD.PARAMS)
    if _head_out_dim(heads[-1]) != c["embedding_dim"]:
        raise ConfigError(f"{where}.embedding_dim={c['embedding_dim']} must equal the last head's output dim "
                          f"{_head_out_dim(heads[-1])}")
