"""The pipeline benchmark's table (markdown) and plot (ms per stage, frames per second)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .device import describe
from .report import machine_title, markdown_table, new_figure, save_figure


def pipeline_markdown(result: dict[str, Any]) -> str:
    """The whole ``pipeline.md``: machine, settings, the table and what its columns mean."""
    stages = result["settings"]["stages"]
    headers = ["Detector", "Threads", "Frames", "Faces/frame", "FPS (end-to-end)", "ms/frame p50 / p90 / p99",
               *[f"{s} ms" for s in stages], "classify ms/face"]
    lines = []
    for row in result["rows"]:
        lines.append([row["detector"], row["threads"], row["frames"], f"{row['faces_per_frame']:.2f}",
                      f"{row['fps']:.1f}",
                      f"{row['frame_p50_ms']:.1f} / {row['frame_p90_ms']:.1f} / {row['frame_p99_ms']:.1f}",
                      *[f"{row[f'{s}_ms']:.2f}" for s in stages],
                      None if row["classify_ms_per_face"] is None else f"{row['classify_ms_per_face']:.2f}"])
    table = markdown_table(headers, lines, [False] + [True] * (len(headers) - 1))
    settings, device = result["settings"], result["device"]
    model = result["rows"][0] if result["rows"] else {}
    notes = [
        f"Machine: {describe(device)}; load average at start {device.get('load_average_1_5_15min')}.",
        f"Source: {settings['source']}; model {model.get('file')} ({model.get('variant')}); first "
        f"{settings['warmup_frames']} frames of each run not counted; threads apply to "
        f"{settings['threads_apply_to']}.",
        "FPS: counted frames / wall time, decode included. Stage columns: mean ms per frame "
        f"({settings['clock']}); decode = reading the next frame; crop includes the grayscale conversion.",
    ]
    return (f"# Camera pipeline\n\n{table}\n\n" + "\n".join(f"- {n}" for n in notes)
            + f"\n\nCommand: `{result['command']}` ({result['duration_s']} s)\n")


def plot_pipeline(result: dict[str, Any], path: Path) -> None:
    """``pipeline.png``: stacked mean ms per stage for each detector and thread count, FPS labelled."""
    stages = result["settings"]["stages"]
    rows = result["rows"]
    fig, (ax,) = new_figure(1)
    names = [f"{r['detector']}, {r['threads']} thr" for r in rows]
    left = [0.0] * len(rows)
    for i, stage in enumerate(stages):
        widths = [r[f"{stage}_ms"] for r in rows]
        ax.barh(names, widths, left=left, color=f"C{i}", label=stage)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    for y, (row, end) in enumerate(zip(rows, left, strict=True)):
        ax.annotate(f"{row['fps']:.1f} fps", (end, y), textcoords="offset points", xytext=(4, 0),
                    va="center", fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel("mean ms per frame")
    ax.margins(x=0.2)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(f"Camera pipeline: {Path(result['settings']['source']).name}", fontsize=10)
    machine_title(fig, describe(result["device"]), 100)
    save_figure(fig, path)
