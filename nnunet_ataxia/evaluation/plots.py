"""Figures (matplotlib, Agg backend): Bland-Altman, volume scatter, Dice vs threshold with bands, ROC."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def bland_altman_plot(ground_truth: Sequence[float], methods: Mapping[str, Sequence[float]],
                      path: str | os.PathLike, unit: str = "mm³", labels: Sequence[str] | None = None) -> None:
    """Bland-Altman plot (mean of method and ground truth vs their difference), bias and 95 % limits per method.

    Example:
        >>> bland_altman_plot([1, 2, 3], {"WDA": [1.1, 2.0, 3.2]}, "/tmp/ba.png")  # doctest: +SKIP
    """
    plt = _plt()
    gt = np.asarray(ground_truth, float)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for i, (name, values) in enumerate(methods.items()):
        v = np.asarray(values, float)
        mean, diff = (v + gt) / 2, v - gt
        color = f"C{i}"
        ax.scatter(mean, diff, color=color, label=name, zorder=3)
        bias = diff.mean()
        sd = diff.std(ddof=1) if len(diff) > 1 else 0.0
        ax.axhline(bias, color=color, lw=1.5)
        for loa in (bias - 1.96 * sd, bias + 1.96 * sd):
            ax.axhline(loa, color=color, lw=1, ls="--")
        if labels is not None:
            for x, y, t in zip(mean, diff, labels, strict=False):
                ax.annotate(str(t), (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel(f"mean of method and ground truth ({unit})")
    ax.set_ylabel(f"method - ground truth ({unit})")
    ax.set_title("Bland-Altman (solid: bias, dashed: bias ± 1.96 SD)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def scatter_plot(ground_truth: Sequence[float], methods: Mapping[str, Sequence[float]], path: str | os.PathLike,
                 unit: str = "mm³", groups: Sequence[str] | None = None) -> None:
    """Method volume vs ground-truth volume with the identity line; marker shape per group."""
    plt = _plt()
    gt = np.asarray(ground_truth, float)
    markers = {"control": "o", "presymptomatic": "s", "sca2": "^"}
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for i, (name, values) in enumerate(methods.items()):
        v = np.asarray(values, float)
        gs = list(groups) if groups is not None else [""] * len(v)
        for g in dict.fromkeys(gs):
            sel = np.array([x == g for x in gs])
            ax.scatter(gt[sel], v[sel], color=f"C{i}", marker=markers.get(g, "o"),
                       label=f"{name} ({g})" if g else name, zorder=3)
    lo = min(gt.min(), *(np.min(v) for v in methods.values()))
    hi = max(gt.max(), *(np.max(v) for v in methods.values()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="identity")
    ax.set_xlabel(f"ground truth ({unit})")
    ax.set_ylabel(f"method ({unit})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def dice_threshold_plot(thresholds: np.ndarray, curves: Mapping[str, dict], path: str | os.PathLike,
                        title: str = "Dice vs threshold") -> None:
    """Dice as a function of the binarization threshold; ``curves[name]`` has ``dice`` and optionally ``low``,
    ``high`` (bootstrap confidence band) and ``best_threshold`` (marked)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for i, (name, c) in enumerate(curves.items()):
        ax.plot(thresholds, c["dice"], color=f"C{i}", label=name)
        if c.get("low") is not None:
            ax.fill_between(thresholds, c["low"], c["high"], color=f"C{i}", alpha=0.2, lw=0)
        if c.get("best_threshold") is not None:
            ax.axvline(c["best_threshold"], color=f"C{i}", ls=":", lw=1)
    ax.set_xlabel("threshold")
    ax.set_ylabel("Dice")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def roc_plot(curves: Mapping[str, dict], path: str | os.PathLike, max_fpr: float | None = None) -> None:
    """ROC curves; ``curves[name]`` has ``fpr``, ``tpr``, ``auc``. ``max_fpr`` cuts the x axis (the paper shows
    only low false-positive rates)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for i, (name, c) in enumerate(curves.items()):
        ax.plot(c["fpr"], c["tpr"], color=f"C{i}", label=f"{name} (AUC {c['auc']:.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    if max_fpr:
        ax.set_xlim(0, max_fpr)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC inside the brain mask")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
