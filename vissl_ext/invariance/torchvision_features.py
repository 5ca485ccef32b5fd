"""Features of any torchvision model (weights from a file) at a chosen layer, for a RIS manifest:
batched, in manifest order, written as one .npy (atomic)."""
import os
from typing import Optional, Tuple

import numpy as np
import torch
from tqdm import tqdm

from vissl_ext.invariance.images import load_ris_image
from vissl_ext.invariance.manifest import RISManifest
from vissl_ext.utils.checkpoint_layouts import infer_resnet_arch, load_into, read_trunk

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def build_torchvision_model(arch: str = "auto", weights: Optional[str] = None, state_dict_key: str = "",
                            encoder: Optional[str] = None, trust_pickle: bool = False) -> Tuple[torch.nn.Module, str]:
    """torchvision ``arch`` with random init, then the ResNet trunk in ``weights``: any layout
    vissl_ext.utils.checkpoint_layouts reads (torchvision, timm, MoCo, VISSL, DINO, ...), loaded
    safely unless ``trust_pickle``; ``state_dict_key`` narrows the search to one nested key,
    ``encoder`` picks online/momentum. ``arch="auto"``: the ResNet the trunk's shapes match
    (resnet50 without weights). The classifier (``fc``) stays at its random init. Returns the
    model (eval mode) and the architecture's name."""
    import torchvision.models as tvm

    found = read_trunk(weights, encoder=encoder, trust_pickle=trust_pickle, under=state_dict_key) if weights else None
    if arch == "auto":
        arch = infer_resnet_arch(found) if found else "resnet50"
    if arch not in tvm.list_models():
        raise ValueError(f"unknown torchvision architecture {arch!r}; e.g. resnet50, resnet18")
    model = tvm.get_model(arch, weights=None)
    if found:
        load_into(model, found, target=arch)
    return model.eval(), arch


def load_torchvision_model(arch: str = "auto", weights: Optional[str] = None, **kw) -> torch.nn.Module:
    """The model of :func:`build_torchvision_model`."""
    return build_torchvision_model(arch, weights, **kw)[0]


def seeded_random_model(arch: str, seed: int) -> torch.nn.Module:
    """``arch`` with random init drawn from ``seed``: the same weights in every process and run
    (the RIS random baseline). The caller's global RNG state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return load_torchvision_model(arch)


class _ManifestImages(torch.utils.data.Dataset):
    def __init__(self, manifest: RISManifest, size: int, rows: Optional[range] = None):
        import torchvision.transforms as T

        self.entries = manifest.entries if rows is None else manifest.entries[rows.start:rows.stop]
        self.tf = T.Compose([T.Resize((size, size)), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])

    def __len__(self):
        return len(self.entries)

    def __getitem__(self, i):
        e = self.entries[i]
        return self.tf(load_ris_image(e.image, e.box))


def check_layer(model: torch.nn.Module, layer: str):
    """A user error unless ``layer`` is a graph node of ``model``."""
    from torchvision.models.feature_extraction import get_graph_node_names

    nodes = get_graph_node_names(model)[1]
    if layer not in nodes:
        raise ValueError(f"layer {layer!r} is not a node of the model; e.g. {nodes[-6:]}")


@torch.no_grad()
def extract_torchvision_features(model: torch.nn.Module, manifest: RISManifest, out_path: str,
                                 layer: str = "avgpool", image_size: Optional[int] = None,
                                 batch_size: int = 32, workers: int = 0, device: str = "cpu",
                                 rows: Optional[range] = None, progress: bool = True) -> np.ndarray:
    """Features [N, D] (flattened output of node ``layer``, default the 2048-d pooled output of
    a ResNet-50) for every manifest entry, or for the entries ``rows`` (a contiguous block, in
    order: a shard), saved to ``out_path`` (.npy, atomically)."""
    from torchvision.models.feature_extraction import create_feature_extractor

    check_layer(model, layer)
    net = create_feature_extractor(model, return_nodes={layer: "feat"}).eval().to(device)
    data = _ManifestImages(manifest, image_size or manifest.image_size, rows)
    if not len(data):
        raise ValueError(f"{manifest.path or 'manifest'}: no images to extract features of")
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=workers)
    out = None
    i = 0
    for batch in tqdm(loader, desc=f"features ({layer})", disable=not progress):
        f = net(batch.to(device))["feat"].flatten(1).float().cpu().numpy()
        if out is None:
            out = np.lib.format.open_memmap(out_path + ".partial.npy", mode="w+", dtype=np.float32,
                                            shape=(len(data), f.shape[1]))
        out[i:i + len(f)] = f
        i += len(f)
    out.flush()
    del out
    os.replace(out_path + ".partial.npy", out_path)
    return np.load(out_path, mmap_mode="r", allow_pickle=False)
