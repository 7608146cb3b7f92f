"""Personal calibration: the maths of the shift, the checks of a profile against a model, and
``fer-edge enrol`` / ``fer-edge run --profile`` through the real commands on the shared photos and video."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from dataclasses import replace

import cv2
import numpy as np
import pytest

from edge_runtime.model.card import file_sha256, load_card
from edge_runtime.recognition import calibration
from edge_runtime.recognition.calibration import Calibration, ProfileError, load_profile, make_profile
from edge_runtime.results import Expression
from tests.edge_support import PHOTOS, ROOT, VIDEO, need

MODEL = ROOT / "models" / "fer4_int8.tflite"
LABELS = ("happy", "neutral", "sad", "surprise")


def reference_of(card) -> np.ndarray:
    return np.array([card.neutral_reference["log_scores"][k] for k in card.labels])


def profile_with(log_scores: np.ndarray, card, sha: str = "") -> calibration.Profile:
    """A profile whose mean floored log-scores are ``log_scores``."""
    return calibration.Profile(name="p", model_sha256=sha or file_sha256(MODEL), labels=tuple(card.labels),
                               log_scores=dict(zip(card.labels, map(float, log_scores), strict=True)),
                               floor=calibration.FLOOR, frames=1, created="2026-01-01T00:00:00+00:00")


@pytest.fixture(scope="module")
def card():
    return load_card(MODEL)


def test_a_profile_equal_to_the_reference_changes_nothing(card):
    cal = Calibration(profile_with(reference_of(card), card), card, file_sha256(MODEL))
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=50)
    probs[:5, 0] = 0.0  # zeros and tiny scores below the floor too
    probs[:5] /= probs[:5].sum(1, keepdims=True)
    np.testing.assert_allclose(cal.probabilities(probs), probs, atol=1e-12)


def test_the_shift_moves_exactly_the_classes_whose_profile_differs(card):
    delta = np.array([0.0, 0.0, 1.2, 0.0])  # the person's neutral face reads sadder than the reference's
    cal = Calibration(profile_with(reference_of(card) + delta, card), card, file_sha256(MODEL), alpha=0.5)
    p = np.array([0.1, 0.3, 0.5, 0.1])
    q = cal.probabilities(p)
    assert q.sum() == pytest.approx(1.0)
    others = [0, 1, 3]
    np.testing.assert_allclose(q[others] / q[others].sum(), p[others] / p[others].sum())  # their ratios kept
    assert q[2] / q[1] == pytest.approx(p[2] / p[1] * np.exp(-0.5 * 1.2))  # sad moved down by alpha * delta
    expression = cal.expression(Expression("sad", dict(zip(LABELS, p, strict=True))))
    assert expression.label == "neutral" and expression.profile == "p"
    assert expression.raw_scores == dict(zip(LABELS, p, strict=True))


def test_a_profile_is_refused_for_another_model_other_labels_or_a_card_without_reference(card):
    sha = file_sha256(MODEL)
    with pytest.raises(ProfileError, match="enrolled with another model"):
        Calibration(profile_with(reference_of(card), card, sha="0" * 64), card, sha)
    other = replace(profile_with(reference_of(card), card), labels=("a", "b", "c", "d"))
    with pytest.raises(ProfileError, match="has labels a, b, c, d"):
        Calibration(other, card, sha)
    with pytest.raises(ProfileError, match="has no neutral_reference"):
        Calibration(profile_with(reference_of(card), card), replace(card, neutral_reference=None), sha)


def test_make_profile_means_the_floored_log_scores_and_round_trips(tmp_path, card):
    probs = np.array([[0.9, 0.1, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]])
    profile = make_profile(probs, LABELS, "ab" * 32, "me")
    assert profile.log_scores["happy"] == pytest.approx((np.log(0.9) + np.log(0.5)) / 2)
    assert profile.log_scores["sad"] == pytest.approx(np.log(calibration.FLOOR))
    path = tmp_path / "me.json"
    calibration.write_profile(profile, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_profile(path) == profile


@pytest.mark.parametrize("edit", [lambda d: d.update(floor=0), lambda d: d.update(frames=0),
                                  lambda d: d["log_scores"].update(sad=float("nan")),
                                  lambda d: d["log_scores"].pop("sad"), lambda d: d.update(version=9)])
def test_a_malformed_profile_is_one_error_line(tmp_path, edit):
    data = calibration.to_json(make_profile(np.full((1, 4), 0.25), LABELS, "ab" * 32, "me"))
    edit(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ProfileError, match="is not a valid profile") as info:
        load_profile(path)
    assert "\n" not in str(info.value)


def fer_edge(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_runtime.service.console", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_enrol_then_run_with_the_profile_through_the_commands(tmp_path, card):
    photo = need(PHOTOS) / "biden.jpg"
    profile_path = tmp_path / "joe.json"
    done = fer_edge("enrol", "--source", str(photo), "--profile", str(profile_path))
    assert done.returncode == 0 and done.stderr == "", done.stderr
    summary = json.loads(done.stdout)
    assert summary["profile"] == "joe" and summary["frames"] == 1
    assert stat.S_IMODE(profile_path.stat().st_mode) == 0o600
    profile = load_profile(profile_path)
    assert profile.model_sha256 == file_sha256(MODEL) and "pixels" not in profile_path.read_text()

    plain = json.loads(fer_edge("run", "--source", str(photo)).stdout)["faces"][0]
    calibrated = json.loads(fer_edge("run", "--source", str(photo), "--profile", str(profile_path)).stdout)["faces"][0]
    assert calibrated["profile"] == "joe" and "profile" not in plain
    assert calibrated["raw_scores"] == plain["scores"]
    shift = calibration.ALPHA * (np.array([profile.log_scores[k] for k in LABELS]) - reference_of(card))
    expected = calibration.shifted(np.array([plain["scores"][k] for k in LABELS]), shift)
    np.testing.assert_allclose([calibrated["scores"][k] for k in LABELS], expected, atol=2e-4)  # 4 digits
    assert calibrated["label"] == LABELS[int(np.argmax(expected))]


def test_only_the_largest_face_is_read_against_the_profile(tmp_path):
    profile_path = tmp_path / "joe.json"
    enrolled = fer_edge("enrol", "--source", str(need(PHOTOS) / "biden.jpg"), "--profile", str(profile_path))
    assert enrolled.returncode == 0
    faces = json.loads(fer_edge("run", "--source", str(PHOTOS / "two_people.jpg"), "--profile",
                                str(profile_path)).stdout)["faces"]
    assert len(faces) == 2
    largest = max(faces, key=lambda f: f["box"][2] * f["box"][3])
    assert [f.get("profile") for f in faces if f is not largest] == [None]
    assert largest["profile"] == "joe"


def one_line(done: subprocess.CompletedProcess, *fragments: str) -> None:
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("fer-edge enrol: error: ") or line.startswith("fer-edge run: error: "), line
    for fragment in fragments:
        assert fragment in line, line


def test_enrol_refuses_two_people_no_face_and_a_profile_for_another_model(tmp_path):
    one_line(fer_edge("enrol", "--source", str(need(PHOTOS) / "two_people.jpg"), "--profile",
                      str(tmp_path / "x.json")), "two faces of similar size")
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 200, np.uint8))
    one_line(fer_edge("enrol", "--source", str(blank), "--profile", str(tmp_path / "x.json")), "no face found")
    assert not (tmp_path / "x.json").exists()
    profile = tmp_path / "joe.json"
    assert fer_edge("enrol", "--source", str(PHOTOS / "biden.jpg"), "--profile", str(profile)).returncode == 0
    one_line(fer_edge("run", "--source", str(PHOTOS / "biden.jpg"), "--profile", str(profile), "--model",
                      str(ROOT / "models" / "fer4s_int8.tflite")), "enrolled with another model")


def test_enrol_on_a_video_with_too_few_faces_is_refused(tmp_path):
    face = cv2.imread(str(need(PHOTOS) / "biden.jpg"))
    clip = tmp_path / "mostly_empty.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (320, 480))
    for i in range(12):
        writer.write(cv2.resize(face, (320, 480)) if i < 2 else np.full((480, 320, 3), 90, np.uint8))
    writer.release()
    one_line(fer_edge("enrol", "--source", str(clip), "--profile", str(tmp_path / "x.json"), "--frames", "10"),
             "too few frames with a face", "2 of 12 read, 5 needed")


def test_a_face_that_does_not_read_neutral_is_enrolled_with_a_warning(tmp_path):
    profile = tmp_path / "clip.json"
    done = fer_edge("enrol", "--source", str(need(VIDEO)), "--profile", str(profile), "--frames", "10")
    assert done.returncode == 0 and profile.is_file()
    reads_as = json.loads(done.stdout)["reads_as"]
    if reads_as == "neutral":
        assert done.stderr == ""
    else:
        assert f"reads as {reads_as}" in done.stderr and "not neutral" in done.stderr


@pytest.mark.slow
def test_the_shipped_neutral_reference_is_what_the_command_computes_and_nothing_else_changes(tmp_path):
    data = need(ROOT.parent / "shared" / "data" / "fer2013")
    model = tmp_path / "fer4s_int8.tflite"
    shipped = ROOT / "models" / "fer4s_int8.tflite"
    model.write_bytes(shipped.read_bytes())
    raw = json.loads(shipped.with_suffix(".json").read_text())
    stale = {k: v for k, v in raw.items() if k != "neutral_reference"}
    model.with_suffix(".json").write_text(json.dumps(stale))
    done = subprocess.run([sys.executable, "-m", "convert.neutral_reference", "--model", str(model), "--data",
                           str(data), "--log-level", "warning"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    written = json.loads(model.with_suffix(".json").read_text())
    assert {k: v for k, v in written.items() if k != "neutral_reference"} == stale
    reference = written["neutral_reference"]
    shipped_reference = raw["neutral_reference"]  # the shipped card is not stale
    assert reference["log_scores"] == pytest.approx(shipped_reference["log_scores"], abs=1e-9)
    assert reference["faces"] == shipped_reference["faces"]
    assert max(reference["log_scores"], key=reference["log_scores"].get) == "neutral"
    assert reference["floor"] == calibration.FLOOR and reference["split"] == "validation"


def test_http_latest_and_mqtt_carry_the_calibrated_face_and_discovery_keeps_its_shape(tmp_path):
    pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed (pip install 'fer-edge[mqtt]')")
    import shutil
    import urllib.request

    from tests.edge_stream_support import free_port, stop_process, wait_until
    from tests.mqtt_support import Broker, Subscriber

    if shutil.which("mosquitto") is None:
        pytest.skip("mosquitto not installed (apt-get install mosquitto)")
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(need(PHOTOS) / "biden.jpg", photos / "biden.jpg")
    profile = tmp_path / "joe.json"
    assert fer_edge("enrol", "--source", str(photos), "--profile", str(profile)).returncode == 0
    (tmp_path / "broker").mkdir()
    broker = Broker(tmp_path / "broker")
    broker.start()
    sub = Subscriber(broker.port, ["fer-edge/#", "homeassistant/#"])
    http = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "edge_runtime", "--source", str(photos), "--loop", "--max-fps",
                             "5", "--profile", str(profile), "--http", f"127.0.0.1:{http}", "--mqtt",
                             f"mqtt://127.0.0.1:{broker.port}", "--device-name", "desk", "--mqtt-every", "0",
                             "--output", str(tmp_path / "r.jsonl")], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        sub.wait_for(lambda m: any(t == "fer-edge/desk/state" for t, _, _ in m), timeout=60)  # unchanged after
        wait_until(lambda: urllib.request.urlopen(f"http://127.0.0.1:{http}/latest", timeout=5).status == 200, 30,
                   "/latest")
        with urllib.request.urlopen(f"http://127.0.0.1:{http}/latest", timeout=5) as answer:
            latest = json.loads(answer.read())
    finally:
        stop_process(proc, __import__("signal").SIGTERM, timeout=10)
        sub.close()
        broker.stop()
    (face,) = latest["faces"]
    assert face["profile"] == "joe" and set(face["raw_scores"]) == set(LABELS)
    state = json.loads([p for t, p, _ in sub.messages if t == "fer-edge/desk/state"][-1])
    (published,) = state["faces"]
    assert published["profile"] == "joe" and published["label"] == face["label"]
    assert published["raw_scores"] == {k: round(v, 2) for k, v in face["raw_scores"].items()}
    configs = sorted(t for t, _, _ in sub.messages if t.startswith("homeassistant/"))
    assert configs == sorted(f"homeassistant/sensor/desk/{o}/config"
                             for o in ["expression", "faces", *(f"score_{label}" for label in LABELS)])
