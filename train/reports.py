"""The evaluation report: accuracy, per-class precision/recall/F1, confusion matrix (JSON + PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_runtime.atomic_io import atomic_write_json, atomic_write_with
from edge_runtime.labelled_faces.scoring import classification_report
from edge_runtime.model.card import CardMetrics


def plot_confusion(report: dict, path: str | Path, title: str) -> None:
    """Save the confusion matrix (row-normalized colours, raw counts written in) as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = report["labels"]
    confusion = np.asarray(report["confusion"])
    rates = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.1 * len(labels) + 2.5, 1.1 * len(labels) + 2))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{confusion[i, j]}\n{rates[i, j]:.0%}", ha="center", va="center", fontsize=8,
                    color="white" if rates[i, j] > 0.5 else "black")
    ax.set_title(f"{title}\naccuracy {report['accuracy']:.2%} (n={report['n']})")
    fig.tight_layout()
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, dpi=110))
    plt.close(fig)


def plot_history(history: dict[str, list[float]], path: str | Path) -> None:
    """Save training curves (loss and accuracy, train vs validation) as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for key, style in ((metric, "-"), (f"val_{metric}", "--")):
            if key in history:
                ax.plot(range(1, len(history[key]) + 1), history[key], style, label=key)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, dpi=100))
    plt.close(fig)


# What each label set means, for report titles.
LABEL_SET_TITLES = {"fer2013": "FER2013 folder labels", "ferplus": "FER+ majority labels",
                    "consensus": "consensus faces (FER2013 label = FER+ majority)"}


def label_set_report(probs: np.ndarray, faces, label_source: str) -> dict:
    """Reports against every label set of ``faces`` (a ``edge_runtime.labelled_faces.scoring.ScoredFaces``).

    The top level is the report against the label set the model was trained on (``label_source``),
    so ``accuracy`` keeps meaning what the model learned; ``label_sets`` holds all of them.
    """
    predicted = probs.argmax(1)
    sets = {}
    for name, labels in faces.label_sets().items():
        mask = labels >= 0
        sets[name] = classification_report(labels[mask], predicted[mask], faces.classes)
    main = sets.get(label_source, sets["fer2013"])
    return {**main, "label_source": label_source, "label_sets": sets}


def card_metrics(report: dict) -> CardMetrics:
    """The card's ``metrics``: accuracy on the trained label source, and every label set's figures."""
    per_set = {}
    for name, sub in (report.get("label_sets") or {}).items():
        per_set[f"accuracy_{name}"] = sub["accuracy"]
        per_set[f"balanced_accuracy_{name}"] = sub["balanced_accuracy"]
        per_set[f"n_{name}"] = sub["n"]
        per_set[f"per_class_recall_{name}"] = {k: v["recall"] for k, v in sub["per_class"].items()}
    return CardMetrics(split=report["split"], label_source=report.get("label_source", "fer2013"), n=report["n"],
                       accuracy=report["accuracy"], balanced_accuracy=report.get("balanced_accuracy"),
                       macro_f1=report["macro_f1"],
                       per_class_recall={k: v["recall"] for k, v in report["per_class"].items()}, extra=per_set)


def accuracy_summary(report: dict) -> str:
    """``accuracy 0.8123`` or, with several label sets, ``fer2013 0.7812, ferplus 0.8841, ...``."""
    sets = report.get("label_sets")
    if not sets:
        return f"accuracy {report['accuracy']:.4f}"
    return ", ".join(f"{name} {sub['accuracy']:.4f}" for name, sub in sets.items())


def write_report(report: dict, out_dir: str | Path, stem: str, title: str) -> tuple[Path, Path]:
    """Write ``<stem>.eval.json`` and ``<stem>.confusion.png`` into ``out_dir``."""
    out_dir = Path(out_dir)
    json_path, png_path = out_dir / f"{stem}.eval.json", out_dir / f"{stem}.confusion.png"
    atomic_write_json(json_path, report)
    plot_confusion(report, png_path, title)
    return json_path, png_path


def write_reports(report: dict, out_dir: str | Path, name: str, title: str) -> list[Path]:
    """``write_report``, plus ``<stem>.confusion.<label set>.png`` for every label set of the report. The stem
    is the model's ``name`` for the test split, ``<name>.<split>`` for any other (``report["split"]``)."""
    stem = name if report.get("split", "test") == "test" else f"{name}.{report['split']}"
    paths = list(write_report(report, out_dir, stem, f"{title}, {report.get('label_source', 'fer2013')} labels"))
    for label_set, sub in (report.get("label_sets") or {}).items():
        path = Path(out_dir) / f"{stem}.confusion.{label_set}.png"
        plot_confusion(sub, path, f"{title}\n{LABEL_SET_TITLES.get(label_set, label_set)}")
        paths.append(path)
    return paths


def predict_probabilities(model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Class probabilities of a Keras model for uint8 (N, 48, 48) images."""
    x = images.astype(np.float32)[..., None]
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
