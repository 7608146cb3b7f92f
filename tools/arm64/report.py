"""The check's summary: every emulated side compared with x86, as a dict and as text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_runtime.model.card import load_card

from .build import page_size_check
from .compare import (
    compare_arrays,
    compare_records,
    frames_decoded_differently,
    load_probe,
    meta_problems,
    output_step,
    read_jsonl,
)
from .options import CheckOptions
from .settings import (
    BOX_TOLERANCE_PX,
    DETECTORS,
    JSON_ROUNDING,
    KERNEL_MAX_STEPS,
    PROFILES,
    REFERENCE,
    VIDEO,
    stage_description,
)


def summarize(opts: CheckOptions, runs: list[tuple[str, str, dict]], project: Path) -> dict[str, Any]:
    """Compare every emulated side with x86; the summary dict (``ok``, ``problems``, figures)."""
    step = output_step(opts.model)
    problems = [f"{side} {job}: exit {r['returncode']}: {r['stderr']}" for side, job, r in runs if r["returncode"]]
    card = load_card(opts.model)
    summary: dict[str, Any] = {
        "ok": False, "model": {"file": str(opts.model), "name": card.name, "variant": card.variant,
                               "output_step": step, "sha256": card.sha256},
        "workload": {"photos": list(opts.photos), "video": str(VIDEO), "video_frames": opts.frames,
                     "detectors": list(DETECTORS), "threads": opts.threads, "smoothing": "off"},
        "tolerance": {"box_px": BOX_TOLERANCE_PX, "score": f"one output step ({step}) + {JSON_ROUNDING} rounding",
                      "label": "equal"},
        "wall_s": {f"{side} {job}": r["wall_s"] for side, job, r in runs},
        "sides": {}, "problems": problems,
    }
    ref_dir = opts.workdir / REFERENCE
    ref_meta = ref_arrays = None
    if (ref_dir / "probe" / "meta.json").is_file():
        ref_meta, ref_arrays = load_probe(ref_dir / "probe")
        summary["sides"][REFERENCE] = {"facts": ref_meta}
        problems += meta_problems(REFERENCE, ref_meta, None)
    for side in opts.profiles:
        entry: dict[str, Any] = {"cpu": PROFILES[side]["cpu"], "daemon": {}}
        side_dir = opts.workdir / side
        pixels_differ = None
        if (side_dir / "probe" / "meta.json").is_file() and ref_arrays is not None:
            meta, arrays = load_probe(side_dir / "probe")
            entry["facts"] = meta
            problems += meta_problems(side, meta, project)
            entry["stages"] = compare_arrays(ref_arrays, arrays)
            entry["differences"] = [
                {"stage": stage, "what": stage_description(stage), "identical": f"{st['identical']}/{st['items']}",
                 "max_abs_diff": st["max_abs_diff"], "shape_differs": st["shape_differs"],
                 "share_of_values": round(st["elements_differing"] / st["elements"], 4) if st["elements"] else None}
                for stage, st in entry["stages"].items() if st["identical"] != st["items"]]
            # the runtime's kernels on identical inputs
            for stage in ("kernel_out_xnnpack", "kernel_out_xnnpack_4_threads"):
                kernel = entry["stages"].get(stage, {})
                if not kernel.get("items") or kernel["missing"] or kernel["shape_differs"] or \
                        kernel["max_abs_diff"] > KERNEL_MAX_STEPS:
                    problems.append(f"{side}: {stage}: the classifier's int8 outputs on identical inputs differ by "
                                    f"more than {KERNEL_MAX_STEPS} step: {kernel}")
            pixels_differ = frames_decoded_differently(ref_arrays, arrays, opts.shared / VIDEO)
        else:
            problems.append(f"{side}: no probe results to compare")
        for detector in DETECTORS:
            ref_records, other_records = [], []
            for kind in ("photos", "video"):
                name = f"{detector}-{kind}.jsonl"
                if (ref_dir / name).is_file() and (side_dir / name).is_file():
                    ref_records += read_jsonl(ref_dir / name)
                    other_records += read_jsonl(side_dir / name)
            if not ref_records:
                problems.append(f"{side} {detector}: no output to compare")
                continue
            result = compare_records(ref_records, other_records, step, f"{side} {detector}", pixels_differ)
            problems += result.pop("problems")
            entry["daemon"][detector] = result
        summary["sides"][side] = entry
    x86_versions = (ref_meta or {}).get("versions", {})
    arm_versions = next((s["facts"]["versions"] for s in summary["sides"].values()
                         if "facts" in s and s is not summary["sides"].get(REFERENCE)), {})
    summary["versions"] = {REFERENCE: x86_versions, "aarch64": arm_versions,
                           "same": bool(x86_versions) and x86_versions == arm_versions}
    pages = page_size_check(opts.arm64_dir / "build.log")
    summary["pi5_16k_pages"] = pages
    if pages and pages["files_not_16k_compatible"]:
        problems.append(f"{pages['files_not_16k_compatible']} aarch64 libraries will not load on a Pi 5's 16 KiB-page "
                        f"kernel: {pages['not_ok']}")
    summary["ok"] = not problems
    return summary


def stage_line(stage: str, s: dict[str, Any]) -> str:
    """One probe stage's comparison as text."""
    text = f"{stage:28} {s['identical']:3d}/{s['items']:<3d} bit-identical"
    if s["identical"] != s["items"]:
        share = s["elements_differing"] / s["elements"] if s["elements"] else 0.0
        text += f"; max |diff| {s['max_abs_diff']:.3g} in {share:.1%} of {s['elements']} values"
        text += f", {s['shape_differs']} differ in shape/count" if s["shape_differs"] else ""
        text += f", {s['missing']} missing" if s["missing"] else ""
    return text


def format_summary(summary: dict[str, Any]) -> str:
    """A short human-readable report of a summary."""
    model, w = summary["model"], summary["workload"]
    lines = [f"emulated aarch64 vs x86: model {model['name']} ({model['variant']}, int8 step "
             f"{model['output_step']:.6g}), {len(w['photos'])} photos + {w['video_frames']} video frames, "
             f"both detectors, threads {w['threads']}",
             f"{'profile':8} {'detector':10} {'pixels':9} {'faces':>5} {'identical':>9} {'ok':>4} {'box px':>6} "
             f"{'min IoU':>7} {'score steps':>11} {'(same box)':>10} labels"]
    for side, entry in summary["sides"].items():
        for detector, r in entry.get("daemon", {}).items():
            for group, g in (("same", r), ("differ", r["decoded_differently"])):
                if g["faces"] or group == "same":
                    lines.append(f"{side:8} {detector:10} {group:9} {g['faces']:5d} {g['identical']:9d} "
                                 f"{g['within_tolerance']:4d} {g['max_box_px']:6d} {g['min_iou']:7.3f} "
                                 f"{g['max_score_steps']:11.2f} {g['max_score_steps_same_box']:10.2f} "
                                 f"{'same' if g['labels_equal'] else 'DIFFER'}"
                                 + (f" ({g['label_flips_box_moved']} where the box moved)"
                                    if g["label_flips_box_moved"] else ""))
    for side, entry in summary["sides"].items():
        if "stages" not in entry:
            continue
        facts = entry["facts"]
        lines.append(f"{side} ({entry['cpu']}; cpu features: {facts['cpu_features']}; runtime {facts['runtime']}; "
                     f"TensorFlow installed: {facts['tensorflow_installed']}, imported: "
                     f"{facts['tensorflow_imported'] or 'no'}; 4 threads = 1 thread: "
                     f"{facts.get('xnnpack_4_threads_same_as_1')}) - stages vs x86:")
        lines += ["  " + stage_line(stage, s) for stage, s in entry["stages"].items()]
    pages = summary.get("pi5_16k_pages")
    if pages:
        lines.append(f"Pi 5 16 KiB pages: {pages['load_segments']} ELF LOAD segments of the aarch64 wheels and "
                     f"Python checked, {pages['files_not_16k_compatible']} files not compatible")
    v = summary.get("versions", {})
    lines.append(f"versions: x86 {v.get(REFERENCE)}, aarch64 {v.get('aarch64')}"
                 + ("" if v.get("same") else " (NOT the same: differences may come from versions)"))
    if "seconds" in summary:
        lines.append(f"time: {summary['seconds']} s (emulated timings mean nothing for a real Pi)")
    lines.append("verdict: " + ("same answers" if summary["ok"] else
                                "DIFFERENT:\n  " + "\n  ".join(summary["problems"][:20])))
    return "\n".join(lines)
