"""t-SNE of test features (scikit-learn) and the Figure-3 style panels."""
from __future__ import annotations

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

TSNE_PERPLEXITY = 30  # t-SNE needs more points than this


def tsne_embed(features: np.ndarray, labels: np.ndarray, max_points: int | None, seed: int,
               progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """2-D t-SNE of (a stratified random subset of) the features.

    Returns:
        tuple: ``[M, 2]`` embedding and the ``[M]`` labels of the embedded points.
    """
    from sklearn.manifold import TSNE
    rng = np.random.default_rng(seed)
    idx = np.arange(len(features))
    if max_points and len(idx) > max_points:
        idx = np.sort(rng.choice(idx, max_points, replace=False))
    if progress:
        print(f't-SNE of {len(idx)} test features ({features.shape[1]}-d) ...', flush=True)
    # scikit-learn's t-SNE has no progress callback; verbose=2 reports every 50 iterations
    emb = TSNE(n_components=2, init='pca', perplexity=TSNE_PERPLEXITY, random_state=seed,
               verbose=2 if progress else 0).fit_transform(features[idx].astype(np.float32))
    return emb, labels[idx]


def draw_panel(ax, emb: np.ndarray, labels: np.ndarray, title: str,
               tail_classes: list[int]) -> None:
    cmap = plt.get_cmap('tab10')
    for c in range(10):
        pts = emb[labels == c]
        ax.scatter(pts[:, 0], pts[:, 1], s=2, color=cmap(c), alpha=0.7,
                   label=f'{c}{" (tail)" if c in tail_classes else ""}')
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])


def save_figure(fig, stem) -> list[str]:
    """Write ``stem.png`` and ``stem.pdf``; returns the paths."""
    paths = [f'{stem}.png', f'{stem}.pdf']
    for p in paths:
        fig.savefig(p, dpi=150, bbox_inches='tight')
    plt.close(fig)
    return paths


def plot_single(emb, labels, title, tail_classes, stem) -> list[str]:
    fig, ax = plt.subplots(figsize=(5.5, 5))
    draw_panel(ax, emb, labels, title, tail_classes)
    ax.legend(markerscale=5, fontsize=7, loc='best')
    return save_figure(fig, stem)


def plot_panels(panels: list[tuple], tail_classes: list[int], stem) -> list[str]:
    """``panels``: list of ``(embedding, labels, title)``."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 5))
    for ax, (emb, labels, title) in zip(np.atleast_1d(axes), panels):
        draw_panel(ax, emb, labels, title, tail_classes)
    np.atleast_1d(axes)[-1].legend(markerscale=5, fontsize=7, loc='center left',
                                   bbox_to_anchor=(1.0, 0.5))
    return save_figure(fig, stem)
