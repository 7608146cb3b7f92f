"""benchmarks.latency on a tiny model in four variants and tiny fake peers (real TFLite, real files)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.accuracy import TestFaces, score
from benchmarks.latency import main, measured_fields, parse_threads
from benchmarks.peer import PEER_LABELS, peer_input
from benchmarks.tflite_model import CardModel, label_columns, load_interpreter
from benchmarks.timing import summarize, time_invokes
from tests.bench_support import LABELS, PEER_ORDER, TEST_COUNTS, VARIANTS

ROOT = Path(__file__).resolve().parent.parent
ROW_FIELDS = ("model", "variant", "threads", "p50_ms", "p90_ms", "p99_ms", "size_bytes", "accuracy",
              "accuracy_source", "accuracy_delta_pt", "throughput_fps", "runs", "warmup")
DEVICE_FIELDS = ("cpu_model", "cores", "architecture", "os", "python", "runtime", "runtime_version")
TINY = ["--runs", "20", "--warmup", "3", "--latency-faces", "16", "--threads", "1,2"]


def run_cli(args: list[str]) -> subprocess.CompletedProcess:
    """``python -m benchmarks.latency ARGS`` in a subprocess (for exit codes and stderr)."""
    return subprocess.run([sys.executable, "-m", "benchmarks.latency", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def measured(bench_setup, tmp_path_factory):
    """One run with --data and the image-reading fake peer, written to --out."""
    out = tmp_path_factory.mktemp("latency_out")
    code = main(["--models", str(bench_setup.models), "--data", str(bench_setup.data),
                 "--peer", str(bench_setup.peer), "--out", str(out), *TINY])
    assert code == 0
    return out, json.loads((out / "latency.json").read_text())


def rows_by(result: dict) -> dict[tuple[str, int], dict]:
    return {(r["variant"], r["threads"]): r for r in result["rows"]}


def test_json_has_device_and_every_row_field(measured):
    out, result = measured
    assert set(DEVICE_FIELDS) <= set(result["device"])
    assert result["device"]["cores"] == os.cpu_count()
    rows = rows_by(result)
    assert set(rows) == {(v, t) for v in (*VARIANTS, "int8+flip", "peer") for t in (1, 2)}
    for row in result["rows"]:
        missing = [f for f in ROW_FIELDS if f not in row]
        assert not missing, f"row {row['variant']}@{row['threads']} lacks {missing}"
        assert row["model"] == "tiny" and row["runs"] == 20 and row["warmup"] == 3
        assert 0 < row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]
        assert row["accuracy_source"] == "measured"
    sizes = {v: rows[(v, 1)]["size_bytes"] for v in VARIANTS}
    assert sizes["int8"] < sizes["float32"] and sizes["dynamic"] < sizes["float32"]


def test_outputs_written_table_and_plot(measured):
    out, result = measured
    table = (out / "latency.md").read_text()
    assert "| Model | Variant |" in table and "p50 / p90 / p99 ms, 1 thread" in table
    for variant in VARIANTS:
        assert f"| tiny | {variant} |" in table
    assert "| tiny | peer (fer) |" in table
    assert result["device"]["cpu_model"] in table and "int8 dot product" in table
    assert (out / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_measured_accuracy_matches_keras_and_deltas_from_same_run(measured, bench_setup):
    _, result = measured
    rows = rows_by(result)
    n = len(bench_setup.test_targets)
    assert rows[("float32", 1)]["accuracy_n"] == n
    assert abs(rows[("float32", 1)]["accuracy"] - bench_setup.keras_accuracy) <= 1 / n + 1e-9
    assert 0.5 < rows[("int8", 1)]["accuracy"]  # int8 input quantized per the card, not garbage
    for variant in VARIANTS:
        row = rows[(variant, 1)]
        expected = (row["accuracy"] - rows[("float32", 1)]["accuracy"]) * 100
        assert row["accuracy_delta_pt"] == pytest.approx(expected, abs=1e-3)
        assert row["accuracy"] != bench_setup.recorded[variant]["accuracy"]  # not the card's figure


def test_ratios_come_from_the_same_run(measured):
    _, result = measured
    rows = rows_by(result)
    for variant in VARIANTS:
        for threads in (1, 2):
            ours, peer = rows[(variant, threads)], rows[("peer", threads)]
            assert ours["p50_ratio_vs_peer"] == pytest.approx(ours["p50_ms"] / peer["p50_ms"], abs=5e-4)  # 3 decimals
            assert ours["accuracy_ratio_vs_peer"] == pytest.approx(ours["accuracy"] / peer["accuracy"],
                                                                   rel=1e-3)
            assert ours["accuracy_vs_peer_pt"] == pytest.approx(
                (ours["accuracy"] - peer["accuracy"]) * 100, abs=1e-3)
    assert rows[("peer", 1)]["accuracy_delta_pt"] is None


def test_peer_is_scored_over_our_classes_in_its_label_order(bench_setup, tmp_path):
    # The biased peer answers angry > sad > happy > the rest whatever the image: over our 4 classes
    # (happy, neutral, sad, surprise) that is always "sad", right on exactly the sad faces.
    code = main(["--model", str(bench_setup.models / "tiny_int8.tflite"), "--data", str(bench_setup.data),
                 "--peer", str(bench_setup.biased_peer), "--out", str(tmp_path), *TINY])
    assert code == 0
    rows = rows_by(json.loads((tmp_path / "latency.json").read_text()))
    sad = LABELS.index("sad")
    assert rows[("peer", 1)]["accuracy"] == pytest.approx(TEST_COUNTS[sad] / sum(TEST_COUNTS), abs=1e-5)
    assert rows[("peer", 1)]["labels"] == list(LABELS)
    assert rows[("int8", 1)]["accuracy_delta_pt"] is None  # no float32 in this run


def test_peer_label_mapping_and_preprocessing():
    assert PEER_LABELS == PEER_ORDER
    assert label_columns(PEER_LABELS, LABELS, "peer").tolist() == [3, 6, 4, 5]
    faces = np.stack([np.zeros((48, 48), np.uint8), np.full((48, 48), 255, np.uint8)])
    x = peer_input(faces)
    assert x.shape == (2, 64, 64, 1) and x.dtype == np.float32
    assert np.allclose(x[0], -1.0) and np.allclose(x[1], 1.0)


def test_without_data_the_cards_accuracy_is_shown_as_recorded(bench_setup, tmp_path, capsys):
    code = main(["--models", str(bench_setup.models), "--peer", str(bench_setup.peer),
                 "--out", str(tmp_path), *TINY])
    assert code == 0
    result = json.loads((tmp_path / "latency.json").read_text())
    rows = rows_by(result)
    for variant in VARIANTS:
        row = rows[(variant, 2)]
        assert row["accuracy_source"] == "recorded"
        assert row["accuracy"] == bench_setup.recorded[variant]["accuracy"]
        assert row["accuracy_delta_pt"] == bench_setup.recorded[variant]["accuracy_delta_pt"]
        assert row["accuracy_ratio_vs_peer"] is None and row["p50_ratio_vs_peer"] > 0
    flip = rows[("int8+flip", 2)]            # the card's figure is int8's without the mirror: not shown
    assert flip["accuracy"] is None and flip["accuracy_source"] is None and flip["accuracy_delta_pt"] is None
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(f"CPU: {result['device']['cpu_model']} (") and "int8 dot product" in printed[0]
    (flip_line,) = [line for line in printed if line.split()[:2] == ["tiny", "int8+flip"]]
    (int8_line,) = [line for line in printed if line.split()[:2] == ["tiny", "int8"]]
    assert flip_line.split()[2] == "-" and int8_line.split()[2] != "-"
    assert rows[("peer", 1)]["accuracy"] is None
    assert "random faces" in result["settings"]["latency_inputs"]
    assert "(recorded)" in (tmp_path / "latency.md").read_text()


def test_int8_input_follows_the_card(bench_setup):
    model = CardModel.from_path(bench_setup.models / "tiny_int8.tflite")
    quantization = model.card.input.quantization
    x = model.prepare(bench_setup.test_images[:3])
    assert x.dtype == np.int8 and x.shape == (3, 48, 48, 1)
    back = (x.astype(np.float32) - quantization.zero_point) * quantization.scale
    assert np.abs(back[..., 0] - bench_setup.test_images[:3]).max() <= quantization.scale / 2 + 1e-3


def test_timing_excludes_warmup_and_counts_runs(bench_setup):
    interpreter = load_interpreter(bench_setup.models / "tiny_float32.tflite", 1)

    class Counting:
        """The real interpreter, counting invokes."""

        def __init__(self, inner):
            self.inner, self.invokes = inner, 0

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def invoke(self):
            self.invokes += 1
            self.inner.invoke()

    counting = Counting(interpreter)
    inputs = [np.zeros((1, 48, 48, 1), np.float32)]
    samples = time_invokes(counting, inputs, runs=25, warmup=7)
    assert counting.invokes == 32 and len(samples) == 25 and (samples > 0).all()


def test_summarize_percentiles():
    stats = summarize(np.arange(1, 101) * 1_000_000, warmup=5)
    assert (stats.p50_ms, stats.p90_ms, stats.p99_ms) == pytest.approx((50.5, 90.1, 99.01))
    assert stats.mean_ms == pytest.approx(50.5) and stats.throughput_fps == pytest.approx(1000 / 50.5)
    with pytest.raises(ValueError):
        summarize([])


def test_measured_accuracy_is_stored_unrounded():
    # 1,914 of 2,570 is 74.4747 %: a value rounded to 5 digits first (0.74475) would print as 74.48.
    labels = np.array([0] * 1914 + [1] * 656)
    test = TestFaces(np.zeros((2570, 48, 48), np.uint8), {"fer2013": labels}, ("happy", "sad"), "test")
    fields = measured_fields(score(np.zeros(2570, int), test), test, "fer2013")
    assert fields["accuracy"] == fields["accuracy_fer2013"] == 1914 / 2570
    assert f"{fields['accuracy'] * 100:.2f}" == "74.47"
    assert fields["recall_fer2013"] == {"happy": 1.0, "sad": 0.0}


def test_parse_threads():
    assert parse_threads("1,all") == list(dict.fromkeys([1, os.cpu_count()]))
    assert parse_threads("2, 1,2") == [2, 1]


@pytest.mark.parametrize("args, message", [
    (["--no-peer", "--data", "/nonexistent/fer2013"], "--data /nonexistent/fer2013 does not exist"),
    (["--peer", "/nonexistent/peer.tflite"], "peer model /nonexistent/peer.tflite not found"),
    (["--no-peer", "--model", "/nonexistent/fer4_int8.tflite"],
     "model file /nonexistent/fer4_int8.tflite not found"),
    (["--no-peer", "--threads", "0"], "--threads '0'"),
])
def test_bad_paths_give_one_clear_line(bench_setup, args, message):
    proc = run_cli(["--models", str(bench_setup.models), "--runs", "2", *args])
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("python -m benchmarks.latency: error: ")]
    assert len(errors) == 1 and message in errors[0], proc.stderr


def test_empty_model_folder_is_a_clear_error(tmp_path, capsys):
    assert main(["--models", str(tmp_path), "--no-peer"]) == 2
    assert "no .tflite model in" in capsys.readouterr().err


def test_model_without_card_is_a_clear_error(bench_setup, tmp_path, capsys):
    lone = tmp_path / "lone.tflite"
    lone.write_bytes((bench_setup.models / "tiny_float32.tflite").read_bytes())
    assert main(["--model", str(lone), "--no-peer"]) == 2
    assert "model card" in capsys.readouterr().err


def test_benchmarks_do_not_import_tensorflow():
    code = ("import sys, benchmarks.latency, benchmarks.camera_pipeline; "
            "sys.exit('tensorflow' in sys.modules or 'keras' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=60).returncode == 0


def test_every_row_is_scored_on_both_label_sets(bench_setup, tmp_path):
    # FER+ votes that move the first 3 sad test faces to neutral: the biased peer (always "sad" over our
    # classes) is then right on 7 of 44 faces on FER+ labels, 10 of 44 on FER2013's, 7 of the 41 consensus faces.
    from edge_runtime.labelled_faces.ferplus import FERPLUS_TO_OURS, VOTE_COLUMNS

    theirs = {ours: name for name, ours in FERPLUS_TO_OURS.items()}
    lines = ["split,file," + ",".join(VOTE_COLUMNS)]
    for path in sorted((bench_setup.data / "test").rglob("*.png")):
        folder = path.parent.name
        moved = folder == "sad" and int(path.stem.split("_")[-1]) < 3
        votes = {theirs["neutral"]: 8, theirs["sad"]: 2} if moved else {theirs[folder]: 10}
        lines.append(f"test,test/{folder}/{path.name}," + ",".join(str(votes.get(c, 0)) for c in VOTE_COLUMNS))
    votes_file = tmp_path / "votes.csv"
    votes_file.write_text("\n".join(lines) + "\n")
    code = main(["--model", str(bench_setup.models / "tiny_int8.tflite"), "--data", str(bench_setup.data),
                 "--votes", str(votes_file), "--peer", str(bench_setup.biased_peer), "--out", str(tmp_path), *TINY])
    assert code == 0
    rows = rows_by(json.loads((tmp_path / "latency.json").read_text()))
    peer = rows[("peer", 1)]
    assert peer["accuracy_fer2013"] == pytest.approx(10 / 44, abs=1e-5)
    assert peer["accuracy_ferplus"] == pytest.approx(7 / 44, abs=1e-5)
    assert peer["accuracy_consensus"] == pytest.approx(7 / 41, abs=1e-5) and peer["accuracy_consensus_n"] == 41
    # always "sad": recall 1 on sad and 0 on the others, on every label set, so balanced accuracy 1/4
    for name in ("fer2013", "ferplus", "consensus"):
        assert peer[f"recall_{name}"] == {"happy": 0.0, "neutral": 0.0, "sad": 1.0, "surprise": 0.0}, name
        assert peer[f"balanced_accuracy_{name}"] == pytest.approx(0.25)
    table = (tmp_path / "latency.md").read_text()
    assert "## Accuracy by label set" in table
    assert "| tiny | peer (fer) | 15.91 (25.00) | 22.73 (25.00) | 17.07 (25.00) | happy 0.0, neutral 0.0, " \
           "sad 100.0, surprise 0.0 |" in table
    ours = rows[("int8", 1)]
    assert {"accuracy_fer2013", "accuracy_ferplus"} <= set(ours)
    assert ours["accuracy"] == ours["accuracy_fer2013"]          # the tiny model was trained on FER2013 labels
    assert ours["accuracy_ferplus_vs_peer_pt"] == pytest.approx((ours["accuracy_ferplus"] - 7 / 44) * 100, abs=1e-3)


def test_an_ensemble_gets_no_flip_row():
    """fer4_accurate has the mirror image inside its graph, and the runtime runs it once under --tta flip."""
    from benchmarks.tflite_model import with_tta

    models = [CardModel.from_path(ROOT / "models" / f) for f in ("fer4_int8.tflite", "fer4_accurate_int8.tflite")]
    assert [(m.name, m.variant) for m in with_tta(models, "flip")] == [
        ("fer4", "int8"), ("fer4", "int8+flip"), ("fer4_accurate", "int8")]


def test_flip_rows_score_the_mean_of_each_face_and_its_mirror(bench_setup, tmp_path):
    from benchmarks.tflite_model import with_tta

    int8 = next(m for m in map(CardModel.from_path, bench_setup.models.glob("*.tflite")) if m.variant == "int8")
    plain, flipped = with_tta([int8], "flip")
    assert (plain.variant, flipped.variant, flipped.invokes_per_face) == ("int8", "int8+flip", 2)
    faces = np.random.default_rng(3).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    interpreter = plain.load(1)
    outputs = plain.scores(np.concatenate([_invoke(interpreter, x) for x in plain.prepare(faces)]), LABELS)
    mirrored = plain.scores(np.concatenate([_invoke(interpreter, x) for x in plain.prepare(faces[:, :, ::-1])]),
                            LABELS)
    both = flipped.scores(np.concatenate([_invoke(interpreter, x) for x in flipped.prepare(faces)]), LABELS)
    np.testing.assert_allclose(both, (outputs + mirrored) / 2, atol=1e-6)
    out = tmp_path / "out"
    assert main(["--model", str(int8.path), "--data", str(bench_setup.data), "--no-peer", "--out", str(out),
                 "--tta", "flip", *TINY]) == 0
    rows = json.loads((out / "latency.json").read_text())["rows"]
    assert [r["variant"] for r in rows if r["threads"] == 1] == ["int8", "int8+flip"]


def _invoke(interpreter, tensor: np.ndarray) -> np.ndarray:
    """One raw output row for one ``H x W x C`` input."""
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], np.ascontiguousarray(tensor[None]))
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()


@pytest.mark.slow
def test_a_shipped_mobile_variant_is_timed_and_scored_like_int8(shared_dir, tmp_path):
    models = ROOT / "models"
    mobile, int8 = models / "fer4s_mobile.tflite", models / "fer4s_int8.tflite"
    if not mobile.is_file():
        pytest.skip(f"{mobile} is not there (python -m convert.mobile --model models/fer4s.keras)")
    code = main(["--model", str(int8), "--model", str(mobile), "--data", str(shared_dir / "data" / "fer2013"),
                 "--no-peer", "--out", str(tmp_path), *TINY])
    assert code == 0
    rows = rows_by(json.loads((tmp_path / "latency.json").read_text()))
    ours, reference = rows[("mobile", 1)], rows[("int8", 1)]
    assert ours["accuracy_source"] == "measured" and ours["p50_ms"] > 0
    for label_set in ("accuracy_fer2013", "accuracy_ferplus"):       # within quantization error of int8
        assert abs(ours[label_set] - reference[label_set]) <= 0.01, (label_set, ours[label_set], reference[label_set])
    assert "mobile" in (tmp_path / "latency.md").read_text()
