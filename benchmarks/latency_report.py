"""The latency benchmark's outputs: the full table (markdown, in ``latency.md``), the compact table
printed on the console, the busy-machine warnings, and the plot (p50 latency against accuracy)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .device import cpu_line, describe
from .report import fmt, machine_title, markdown_table, new_figure, save_figure, write_outputs

log = logging.getLogger(__name__)

MARKERS = {"float32": "o", "float16": "s", "dynamic": "D", "int8": "^", "peer": "*"}


def _threads_label(count: int) -> str:
    return f"{count} thread" + ("s" if count != 1 else "")


def _accuracy_cell(row: dict[str, Any]) -> str | None:
    if row.get("accuracy") is None:
        return None
    text = f"{row['accuracy'] * 100:.2f}"
    if row["accuracy_source"] != "recorded":
        return text
    split = row.get("accuracy_split")
    return text + (f" (recorded, {split})" if split not in (None, "test") else " (recorded)")


def _label_set_cells(row: dict[str, Any]) -> list[str | None]:
    """A row's accuracy on FER+ and on FER2013 labels, in percent (``None`` where not measured)."""
    return [fmt(None if row.get(f"accuracy_{name}") is None else 100 * row[f"accuracy_{name}"])
            for name in ("ferplus", "fer2013")]


def _groups(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str, str], dict[int, dict[str, Any]]]:
    """Rows by (model, variant, file), then by thread count, in run order."""
    groups: dict[tuple[str, str, str], dict[int, dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["model"], row["variant"], row["file"]), {})[row["threads"]] = row
    return groups


def latency_markdown(result: dict[str, Any]) -> str:
    """The whole ``latency.md``: machine, settings, the table and what its columns mean."""
    threads = result["settings"]["threads"]
    by_label_set = any(r.get("accuracy_ferplus") is not None for r in result["rows"])
    headers = ["Model", "Variant", "Size (KiB)", "Accuracy (%)", "Δ vs float32 (pt)"]
    if by_label_set:
        headers += ["FER+ labels (%)", "FER2013 labels (%)"]
    for count in threads:
        headers += [f"p50 / p90 / p99 ms, {_threads_label(count)}", f"faces/s, {_threads_label(count)}"]
    headers += ["p50 ours/peer (" + " / ".join(str(c) for c in threads) + " thr)", "accuracy ours/peer"]
    lines = []
    for (model, variant, _file), by_threads in _groups(result["rows"]).items():
        first = next(iter(by_threads.values()))
        line: list[Any] = [model, "peer (fer)" if variant == "peer" else variant,
                           f"{first['size_bytes'] / 1024:.0f}", _accuracy_cell(first),
                           fmt(first.get("accuracy_delta_pt"), 2, signed=True)]
        if by_label_set:
            line += _label_set_cells(first)
        for count in threads:
            row = by_threads.get(count)
            line += [None, None] if row is None else [
                f"{row['p50_ms']:.3f} / {row['p90_ms']:.3f} / {row['p99_ms']:.3f}",
                f"{row['throughput_fps']:.0f}"]
        ratios = [by_threads[c].get("p50_ratio_vs_peer") if c in by_threads else None for c in threads]
        line.append(None if variant == "peer" or all(r is None for r in ratios)
                    else " / ".join("—" if r is None else f"{r:.2f}×" for r in ratios))
        acc_ratio, acc_pt = first.get("accuracy_ratio_vs_peer"), first.get("accuracy_vs_peer_pt")
        line.append(None if acc_ratio is None else f"{acc_ratio:.3f}× ({acc_pt:+.2f} pt)")
        lines.append(line)
    table = markdown_table(headers, lines, [False, False] + [True] * (len(headers) - 2))
    settings, device = result["settings"], result["device"]
    peer = result.get("peer")
    notes = [
        f"Machine: {describe(device)}; load average at start {device.get('load_average_1_5_15min')}.",
        f"Latency: {settings['latency_scope']}; {settings['runs']} timed runs per model and thread "
        f"count ({settings['clock']}) over {settings['latency_inputs']}, in {settings['rounds']} round(s) "
        f"of the sweep over all models; one model loaded at a time, {settings['warmup']} warm-up runs "
        "excluded after each load. faces/s = 1000 / mean ms.",
        ("Accuracy: measured on " + f"{settings['data']} ({settings['split']} split)." if settings["data"]
         else "Accuracy: recorded in each model card (no --data given); the peer has no card, so no figure."),
        "Δ vs float32: accuracy minus the float32 variant's, in percentage points.",
    ]
    if by_label_set:
        notes.append("Accuracy is scored on the label set each model was trained on (its card's label source; "
                     "the peer: as the model it sits beside); FER+ labels: the FER+ majority label of each face "
                     "that has one among the model's classes; FER2013 labels: the FER2013 folder label.")
    if peer:
        notes.append(f"Peer: {peer['name']} ({Path(peer['file']).name}), its own preprocessing "
                     f"({peer['preprocessing']}), scored over each model's classes ({peer['scoring']}). "
                     "Ratios are ours/peer from this run at the same thread count.")
    notes += [f"Warning: {w}" for w in thread_warnings(result)]
    architectures = architecture_markdown(result)
    recalls = recall_markdown(result)
    return (f"# Latency against accuracy\n\n{table}\n\n" + "\n".join(f"- {n}" for n in notes)
            + ("" if architectures is None else f"\n\n{architectures}\n\n- Parameters and MACs (convolutions "
               "and dense layers, per face) from each model's card; the other columns from the table above.")
            + ("" if recalls is None else f"\n\n{recalls}")
            + f"\n\nCommand: `{result['command']}` ({result['duration_s']} s)\n")


def architecture_markdown(result: dict[str, Any]) -> str | None:
    """One line per model: its architecture, parameters and MACs (from its card) beside the int8
    variant's size, p50 at the fewest threads and accuracy per label set; ``None`` without cards."""
    threads = min(result["settings"]["threads"])
    chosen: dict[str, dict[str, Any]] = {}
    for row in result["rows"]:
        if row["variant"] == "peer" or row["threads"] != threads or row.get("architecture") is None:
            continue
        if row["model"] not in chosen or row["variant"] == "int8":
            chosen[row["model"]] = row
    if not chosen:
        return None
    headers = ["Model", "Architecture", "Parameters", "MACs per face (M)", "Variant", "Size (KiB)",
               f"p50 ms, {_threads_label(threads)}", "FER+ labels (%)", "FER2013 labels (%)"]
    lines = [[model, row["architecture"], None if row.get("parameters") is None else f"{row['parameters']:,}",
              fmt(None if row.get("macs_per_face") is None else row["macs_per_face"] / 1e6, 1), row["variant"],
              f"{row['size_bytes'] / 1024:.0f}", f"{row['p50_ms']:.3f}",
              *_label_set_cells(row)]
             for model, row in chosen.items()]
    return "## Architectures\n\n" + markdown_table(headers, lines, [False, False, True, True, False] + [True] * 4)


def recall_markdown(result: dict[str, Any]) -> str | None:
    """Per model (int8, int8+flip and the peer beside it): accuracy and balanced accuracy on each label set
    and the recall of each class on the consensus faces, in percent; ``None`` when accuracy was not measured."""
    threads = min(result["settings"]["threads"])
    rows = [r for r in result["rows"] if r["threads"] == threads and r.get("recall_consensus")
            and r["variant"] in ("int8", "int8+flip", "peer")]
    if not rows:
        return None

    def pair(row: dict[str, Any], name: str) -> str | None:
        acc, balanced = row.get(f"accuracy_{name}"), row.get(f"balanced_accuracy_{name}")
        return None if acc is None else f"{100 * acc:.2f} ({100 * balanced:.2f})"

    headers = ["Model", "Variant", "FER+ (balanced) %", "FER2013 (balanced) %", "Consensus (balanced) %",
               "Consensus recall per class %"]
    lines = [[row["model"], "peer (fer)" if row["variant"] == "peer" else row["variant"],
              pair(row, "ferplus"), pair(row, "fer2013"), pair(row, "consensus"),
              ", ".join(f"{label} {fmt(None if r is None else 100 * r, 1)}"
                        for label, r in row["recall_consensus"].items())] for row in rows]
    return ("## Accuracy by label set\n\n"
            + markdown_table(headers, lines, [False, False, True, True, True, False])
            + "\n\n- Balanced accuracy: the mean recall of the classes; consensus faces: those whose FER2013 "
            "label and FER+ majority label agree. All from the run above.")


def plot_latency(result: dict[str, Any], path: Path) -> None:
    """``latency.png``: p50 latency (x) against accuracy (y), one point per variant and the peer
    (colour: model, marker: variant, named in the legend), one panel per thread count."""
    threads = result["settings"]["threads"]
    fig, axes = new_figure(len(threads))
    families = list(dict.fromkeys(r["model"] for r in result["rows"]))
    colours = {f: f"C{i}" for i, f in enumerate(families)}
    for ax, count in zip(axes, threads, strict=True):
        shown = 0
        for row in result["rows"]:
            if row["threads"] != count or row.get("accuracy") is None:
                continue
            if row["variant"] == "peer":
                label = f"peer (fer) over {row['model']} classes"
            else:
                recorded = " (recorded)" if row["accuracy_source"] == "recorded" else ""
                label = f"{row['model']} {row['variant']}{recorded}"
            ax.scatter(row["p50_ms"], row["accuracy"] * 100, marker=MARKERS.get(row["variant"], "o"),
                       s=140 if row["variant"] == "peer" else 60, color=colours[row["model"]],
                       edgecolors="black", linewidths=0.5, label=label)
            shown += 1
        if shown == 0:
            ax.text(0.5, 0.5, "no accuracy figures\n(pass --data)", ha="center", va="center",
                    transform=ax.transAxes)
        ax.set_xlabel("p50 latency per face (ms)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{_threads_label(count)}")
        ax.grid(True, alpha=0.3)
        ax.margins(x=0.1, y=0.15)
        ax.set_xlim(left=0)
        if shown:
            ax.legend(fontsize=7, loc="best", ncols=2)
    machine_title(fig, describe(result["device"]), 160)
    save_figure(fig, path)


def thread_warnings(result: dict[str, Any]) -> list[str]:
    """One sentence per model whose p50 at more threads is slower than at one thread.

    More threads never make the same work slower on an idle machine, so this flags a busy one.
    """
    warnings: list[str] = []
    for (model, variant, _file), by_threads in _groups(result["rows"]).items():
        single = by_threads.get(1)
        if single is None:
            continue
        name = "the peer" if variant == "peer" else f"{model} {variant}"
        for count, row in by_threads.items():
            if count > 1 and row["p50_ms"] > single["p50_ms"] and not any(w.startswith(name + ":") for w in warnings):
                warnings.append(f"{name}: p50 at {_threads_label(count)} ({row['p50_ms']:.3f} ms) "
                                f"is slower than at 1 thread ({single['p50_ms']:.3f} ms); the machine was "
                                "probably busy: re-run when it is idle")
    return warnings


def busy_warning(result: dict[str, Any]) -> str | None:
    """The console's one warning line when some model was slower with more threads (``None`` if none)."""
    warnings = thread_warnings(result)
    if not warnings:
        return None
    models = len({(r["model"], r["variant"]) for r in result["rows"] if r["variant"] != "peer"}) + \
        any(r["variant"] == "peer" for r in result["rows"])
    first = warnings[0].split(";")[0]
    return (f"{len(warnings)} of {models} models ran slower with more threads than with one (e.g. {first}): "
            "the machine was probably busy; re-run when it is idle (all of them: the notes in latency.md)")


def compact_table(result: dict[str, Any]) -> str:
    """The console table: accuracy and p50 per thread count, one line per model variant."""
    threads = result["settings"]["threads"]
    by_label_set = any(r.get("accuracy_ferplus") is not None for r in result["rows"])
    headers = ["model", "variant", "accuracy %"] + (["FER+ %", "FER2013 %"] if by_label_set else []) \
        + [f"p50 ms {_threads_label(c)}" for c in threads] + ["p50 vs peer"]
    lines = []
    for (model, variant, _file), by_threads in _groups(result["rows"]).items():
        first = next(iter(by_threads.values()))
        ratio = first.get("p50_ratio_vs_peer")
        sets = [cell or "-" for cell in _label_set_cells(first)] if by_label_set else []
        lines.append([model, "peer" if variant == "peer" else variant, _accuracy_cell(first) or "-", *sets]
                     + [f"{by_threads[c]['p50_ms']:.3f}" if c in by_threads else "-" for c in threads]
                     + ["-" if ratio is None else f"{ratio:.2f}x"])
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *lines, strict=True)]

    def row(cells: Sequence[str]) -> str:
        return "  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return "\n".join([row(headers), *(row(line) for line in lines)])


def report_latency(args: Any, run: Callable[[Any], dict[str, Any]]) -> int:
    """Run the benchmark; print the CPU (with its int8 dot-product instructions, which decide int8's
    speed-up), the compact table and warnings; write the full outputs to ``--out``; returns 0.

    Bad input raises a :class:`~edge_runtime.errors.FerEdgeError` (one ``error:`` line, exit 2, from
    :func:`edge_runtime.command_line.run_command`).
    """
    result = run(args)
    markdown = latency_markdown(result)
    written = [] if args.out is None else write_outputs(args.out, "latency", result, markdown, plot_latency)
    print(cpu_line(result["device"]))
    print(compact_table(result))
    where = f"{written[1]}" if written else "pass --out DIR to write it"
    print(f"\nfull table (p90/p99, faces/s, accuracy against the peer): {where}")
    if len(written) > 2:
        print(f"plot: {written[2]}")
    warning = busy_warning(result)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    log.info("done in %.0f s on %s", result["duration_s"], describe(result["device"]))
    return 0
