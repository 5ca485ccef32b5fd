"""Features of a RIS manifest in 2-D: what RIS measures, for the eye. t-SNE (scikit-learn) or
UMAP (umap-learn, optional) places every image; points are coloured by class and each
trajectory's images are joined by a line in manifest order, so an invariant representation shows
tight strokes and a variant one long zig-zags."""
from typing import Dict, List, Sequence

import numpy as np

METHODS = ("tsne", "umap")


def embed_2d(feats: np.ndarray, method: str = "tsne", seed: int = 0) -> np.ndarray:
    """[N, 2] coordinates of the L2-normalised features (cosine geometry, as kNN and RIS see them)."""
    x = np.asarray(feats, dtype=np.float64).reshape(len(feats), -1)
    if len(x) < 4:
        raise ValueError(f"an embedding needs at least 4 images, got {len(x)}")
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    if method == "tsne":
        from sklearn.manifold import TSNE
        from threadpoolctl import threadpool_limits

        # perplexity must stay below the number of points
        perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3)))
        tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
        # a few thousand points gain nothing from threads; on a busy machine the threads' spin-waits
        # made 16 points take 17 s instead of 0.6 s (measured)
        with threadpool_limits(1 if len(x) < 2000 else None):
            return tsne.fit_transform(x)
    if method == "umap":
        try:
            import umap
        except ImportError:
            raise ValueError("--method umap needs umap-learn (pip install umap-learn); tsne needs nothing more") from None
        return umap.UMAP(n_components=2, random_state=seed).fit_transform(x)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def trajectory_rows(trajectories: Sequence[str]) -> Dict[str, List[int]]:
    """Each trajectory's rows, in manifest order."""
    out: Dict[str, List[int]] = {}
    for i, t in enumerate(trajectories):
        out.setdefault(t, []).append(i)
    return out


def plot_embedding(coords: np.ndarray, trajectories: Sequence[str], classes: Sequence[str], title: str = ""):
    """A matplotlib Figure: one line per trajectory (its class's colour), points coloured by class,
    a legend of classes (the first 20)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(classes))
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    colour = {c: cmap(i % cmap.N) for i, c in enumerate(names)}
    fig, ax = plt.subplots(figsize=(6.4, 5.2), dpi=100)
    for t, rows in trajectory_rows(trajectories).items():
        ax.plot(coords[rows, 0], coords[rows, 1], "-", color=colour[classes[rows[0]]], alpha=0.5, linewidth=1, gid=t)
    for c in names:
        rows = [i for i, k in enumerate(classes) if k == c]
        ax.scatter(coords[rows, 0], coords[rows, 1], s=14, color=colour[c], label=c if len(names) <= 20 else None,
                   gid=c, edgecolors="none")
    if len(names) <= 20:
        ax.legend(fontsize=7, markerscale=1.2, loc="best", frameon=False)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def save_figure(fig, path: str):
    """Write ``fig`` as a PNG, atomically."""
    import matplotlib.pyplot as plt

    from vissl_ext.utils.atomic_io import atomic_open

    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)
