"""The latency benchmark's console output: one progress line, a compact table, busy-machine warnings."""

from __future__ import annotations

import io

from benchmarks.latency_report import busy_warning, compact_table, latency_markdown, thread_warnings
from benchmarks.timing import Progress
from tests.edge_support import ROOT


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_rewrites_one_line_on_a_terminal():
    stream = Terminal()
    progress = Progress(4, stream=stream, width=4)
    for step in ("a", "b", "c", "d"):
        progress.update(f"timing {step}")
    progress.close()
    text = stream.getvalue()
    assert "\n" not in text and text.count("\r") == 6
    assert "[....] 1/4 timing a" in text and "[###.] 4/4 timing d" in text
    assert text.endswith("\r") and not text.rsplit("\r", 2)[-2].strip()  # the line is cleared at the end


def test_progress_on_a_pipe_writes_few_lines():
    stream = io.StringIO()
    progress = Progress(60, stream=stream, interval=3600)
    for i in range(60):
        progress.update(f"step {i}")
    progress.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and "1/60 step 0" in lines[0] and lines[1].endswith("] 60/60 done")  # the command times


def row(model: str, variant: str, threads: int, p50: float, **extra) -> dict:
    return {"model": model, "variant": variant, "threads": threads, "file": f"{model}_{variant}.tflite",
            "size_bytes": 1024, "p50_ms": p50, "p90_ms": p50, "p99_ms": p50, "throughput_fps": 1000 / p50,
            "accuracy": 0.79, "accuracy_source": "measured", "accuracy_delta_pt": 0.0, **extra}


def result(rows: list[dict]) -> dict:
    return {"rows": rows, "command": "python -m benchmarks.latency", "duration_s": 1.0,
            "device": {"cpu_model": "test cpu", "architecture": "x86_64", "cores": 2, "os": "Linux",
                       "python": "3.11", "runtime": "ai_edge_litert", "runtime_version": "2"}, "peer": None,
            "settings": {"threads": [1, 2], "runs": 10, "rounds": 1, "warmup": 1, "latency_inputs": "random",
                         "latency_scope": "invoke", "clock": "perf_counter_ns", "data": "d", "split": "test"}}


def test_a_multi_thread_result_slower_than_single_thread_is_flagged():
    measured = result([row("fer4", "int8", 1, 0.40, p50_ratio_vs_peer=1.5), row("fer4", "int8", 2, 0.45),
                       row("fer4", "float32", 1, 2.0), row("fer4", "float32", 2, 1.1)])
    (warning,) = thread_warnings(measured)
    assert warning.startswith("fer4 int8: p50 at 2 threads (0.450 ms) is slower than at 1 thread (0.400 ms)")
    assert "Warning: fer4 int8" in latency_markdown(measured)  # the full table in the files says it too
    assert busy_warning(measured).startswith("1 of 2 models ran slower with more threads than with one")
    assert busy_warning(result([row("fer4", "int8", 1, 0.4), row("fer4", "int8", 2, 0.3)])) is None


def test_the_compact_table_has_one_line_per_variant():
    table = compact_table(result([row("fer4", "int8", 1, 0.4, p50_ratio_vs_peer=1.52), row("fer4", "int8", 2, 0.3),
                                  row("fer4", "peer", 1, 0.26), row("fer4", "peer", 2, 0.2)]))
    lines = table.splitlines()
    assert lines[0].split() == ["model", "variant", "accuracy", "%", "p50", "ms", "1", "thread", "p50", "ms", "2",
                                "threads", "p50", "vs", "peer"]
    assert lines[1].split() == ["fer4", "int8", "79.00", "0.400", "0.300", "1.52x"]
    assert lines[2].split() == ["fer4", "peer", "79.00", "0.260", "0.200", "-"]
    assert len(lines) == 3 and max(len(line) for line in lines) <= 100


def test_the_architecture_table_has_each_model_once_at_its_int8_variant_and_fewest_threads():
    arch = {"architecture": "edge", "parameters": 1175588, "macs_per_face": 117_400_000}
    measured = result([row("fer4", "float32", 1, 0.9, **arch, accuracy_ferplus=0.80),
                       row("fer4", "int8", 2, 0.15, **arch, accuracy_ferplus=0.81),
                       row("fer4", "int8", 1, 0.27, **arch, accuracy_ferplus=0.81, accuracy_fer2013=0.76),
                       row("fer4", "peer", 1, 0.24, accuracy_ferplus=0.74)])
    section = latency_markdown(measured).split("## Architectures", 1)[1]
    lines = [line for line in section.splitlines() if line.startswith("| fer4")]
    assert lines == ["| fer4 | edge | 1,175,588 | 117.4 | int8 | 1 | 0.270 | 81.00 | 76.00 |"]
    assert "## Architectures" not in latency_markdown(result([row("fer4", "int8", 1, 0.27)]))  # no card facts


def test_a_pretrained_backbone_is_named_in_the_architecture():
    from benchmarks.latency import architecture_text
    from edge_runtime.model.card import load_card

    lite0 = load_card(ROOT / "models" / "fer4_lite0_int8.json")  # the shipped cards
    assert architecture_text(lite0) == "lite0 (EfficientNet-Lite0, 80 px, ImageNet weights)"
    assert architecture_text(load_card(ROOT / "models" / "fer4_int8.json")) == "edge"
