"""Frame sources: dispatch, images, directories, videos (also corrupt/truncated), the Pi camera via a fake,
and that every source releases what it opened."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_runtime import SourceError, open_source
from edge_runtime.detection.detectors import detect_scaled, make_detector
from edge_runtime.errors import SetupError
from edge_runtime.sources.capture import DirectorySource, ImageSource, PiCameraSource, VideoSource
from tests.edge_support import PHOTOS, VIDEO, FakePicamera2, make_clip, need, open_fds


@pytest.fixture
def photo_dir(tmp_path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    shutil.copy(need(PHOTOS / "obama-240p.jpg"), folder / "a.jpg")
    shutil.copy(PHOTOS / "obama_small.jpg", folder / "b_really_a_jpeg.png")  # mislabelled extension
    (folder / "c_notes.txt").write_text("not an image\n")
    (folder / "d_fake.jpg").write_text("not a jpeg either\n")
    (folder / "e_truncated.jpg").write_bytes((PHOTOS / "obama2.jpg").read_bytes()[:300])
    (folder / ".hidden.jpg").write_bytes(b"ignored")
    return folder


def test_open_source_dispatch(tmp_path, photo_dir):
    assert isinstance(open_source("picamera2"), PiCameraSource)
    assert open_source("picamera2:1").camera_num == 1
    device = open_source("0")
    assert isinstance(device, VideoSource) and device.live and device.reconnect and device.target == 0
    stream = open_source("rtsp://192.0.2.1/stream")
    assert stream.live and stream.reconnect and not stream.is_file
    assert isinstance(open_source(str(photo_dir)), DirectorySource)
    assert isinstance(open_source(str(photo_dir / "a.jpg")), ImageSource)
    assert isinstance(open_source(str(photo_dir / "b_really_a_jpeg.png")), ImageSource)
    clip = make_clip(tmp_path / "clip.avi")
    video = open_source(str(clip))
    assert isinstance(video, VideoSource) and video.video and not video.live and not video.reconnect
    assert open_source(str(clip), realtime=True).live
    renamed = tmp_path / "clip.jpg"  # a video with an image extension is still a video
    shutil.copy(clip, renamed)
    assert isinstance(open_source(str(renamed)), VideoSource)
    with pytest.raises(SourceError, match="not found"):
        open_source(str(tmp_path / "missing.mp4"))
    with pytest.raises(SourceError, match="picamera2:N"):
        open_source("picamera2:x")


def test_directory_skips_non_images_and_reads_mislabelled_ones(photo_dir, caplog):
    with open_source(str(photo_dir)) as source:
        frames = list(source)
    assert [Path(f.source).name for f in frames] == ["a.jpg", "b_really_a_jpeg.png"]
    assert [f.index for f in frames] == [0, 1]
    assert frames[0].image.shape == (240, 427, 3) and frames[1].image.shape == (240, 320, 3)
    assert not source.video and not source.live
    for name in ("c_notes.txt", "d_fake.jpg", "e_truncated.jpg"):
        assert f"skipping {photo_dir / name}" in caplog.text
    assert ".hidden" not in caplog.text


def test_empty_directory_and_directory_without_images(tmp_path):
    with pytest.raises(SourceError, match="has no files"):
        open_source(str(tmp_path)).open()
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(SourceError, match="no readable image"):
        with open_source(str(tmp_path)) as source:
            list(source)


def test_single_image_and_unreadable_image(tmp_path):
    with open_source(str(need(PHOTOS / "obama-240p.jpg"))) as source:
        frames = list(source)
    assert len(frames) == 1 and frames[0].source.endswith("obama-240p.jpg") and not source.video
    broken = tmp_path / "broken.png"
    broken.write_bytes((PHOTOS / "alex-lacamoire.png").read_bytes()[:100])
    with pytest.raises(SourceError, match="not a readable image|cannot open video"):
        with open_source(str(broken)) as source:  # decoded when read, so the read is what is timed
            list(source)


def test_video_file_frames_and_release(tmp_path):
    clip = make_clip(tmp_path / "clip.avi", frames=12)
    before = open_fds()
    with open_source(str(clip)) as source:
        frames = list(source)
        assert open_fds() > before  # the file is open while reading
    assert open_fds() == before  # and released on exit
    assert [f.index for f in frames] == list(range(12))
    assert frames[0].image.shape == (90, 160, 3) and frames[5].pts_ms == pytest.approx(5 * 1000 / 30, abs=1)
    source.close()  # twice is fine


def test_corrupt_and_truncated_videos(tmp_path, caplog):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is not a video, whatever its extension says\n" * 1000)
    # FFmpeg may refuse it at open or only at the first frame: either way one clear SourceError.
    with pytest.raises(SourceError, match="corrupt"), open_source(str(garbage)) as source:
        list(source)
    truncated_mp4 = tmp_path / "truncated.mp4"  # the real clip cut in half: its index (moov) is lost
    truncated_mp4.write_bytes(need(VIDEO).read_bytes()[: VIDEO.stat().st_size // 2])
    with pytest.raises(SourceError, match="cannot open video file"):
        open_source(str(truncated_mp4)).open()
    clip = make_clip(tmp_path / "clip.avi", frames=20)
    truncated_avi = tmp_path / "truncated.avi"  # AVI frames decode until the cut
    truncated_avi.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    with open_source(str(truncated_avi)) as source:
        frames = list(source)
    assert 0 < len(frames) < 20
    assert "truncated or corrupt" in caplog.text


def test_realtime_video_is_paced_at_its_frame_rate(tmp_path):
    import time

    clip = make_clip(tmp_path / "clip.avi", frames=9)
    with VideoSource(str(clip), realtime=True) as source:
        started = time.monotonic()
        frames = list(source)
    assert len(frames) == 9 and time.monotonic() - started >= 8 / 30 - 0.01


def test_picamera2_source_hands_out_the_y_plane_without_stride_padding():
    gray = cv2.cvtColor(cv2.imread(str(need(PHOTOS / "obama-240p.jpg"))), cv2.COLOR_BGR2GRAY)[:, :426]
    FakePicamera2.instances.clear()
    with PiCameraSource(size=(426, 240), fps=15, color=False,
                        picamera2_class=lambda n: FakePicamera2(n, [gray])) as source:
        frames = [source.read() for _ in range(3)]
        camera = FakePicamera2.instances[-1]
        assert camera.started
    assert camera.closed and not camera.started  # released on exit
    assert camera.config["lores"]["format"] == "YUV420" and camera.config["controls"] == {"FrameRate": 15.0}
    assert [f.index for f in frames] == [0, 1, 2]
    assert frames[0].image.shape == (240, 426) and np.array_equal(frames[0].image, gray)
    assert frames[0].image.flags.c_contiguous and frames[0].gray is None


@pytest.mark.parametrize("stride_pad", [0, 128])  # 640 wide: stride 640, or 768 like an aligned ISP buffer
def test_picamera2_gives_the_detector_colour_and_the_classifier_the_y_plane(stride_pad):
    photo = cv2.imread(str(need(PHOTOS / "obama_and_biden.jpg")))
    scene = np.zeros((480, 640, 3), np.uint8)  # letterboxed into the 640x480 lores frame
    height = round(photo.shape[0] * 640 / photo.shape[1]) // 2 * 2
    top = (480 - height) // 2
    scene[top:top + height] = cv2.resize(photo, (640, height), interpolation=cv2.INTER_AREA)
    FakePicamera2.instances.clear()
    with PiCameraSource(picamera2_class=lambda n: FakePicamera2(n, [scene], stride_pad=stride_pad)) as source:
        frame = source.read()
    assert FakePicamera2.instances[-1].config["lores"]["stride"] == 640 + stride_pad
    expected_y = cv2.cvtColor(scene, cv2.COLOR_BGR2YUV_I420)[:480]
    assert frame.gray.shape == (480, 640) and np.array_equal(frame.gray, expected_y)
    assert frame.image.shape == (480, 640, 3)
    assert np.abs(frame.image.astype(int) - scene).mean() < 4  # the colours survive YUV420's chroma subsampling
    detector = make_detector("blazeface", num_threads=1)  # the real BlazeFace models, as the recognizer runs them
    faces = detect_scaled(detector, frame.image)
    centres = sorted((x + w / 2) / 640 for x, _y, w, _h in (f.box for f in faces))
    assert len(faces) == 2, [f.box for f in faces]
    assert centres[0] < 0.5 < centres[1]  # Biden left of centre, Obama right


def test_picamera2_is_imported_only_when_used(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "picamera2", None)  # not installed
    source = open_source("picamera2")  # no import yet
    with pytest.raises(SetupError, match="python3-picamera2"):
        source.open()


def test_picamera2_failing_camera_raises_source_error_and_can_be_reopened():
    frame = np.zeros((48, 64), np.uint8)
    FakePicamera2.instances.clear()
    source = PiCameraSource(size=(64, 48), picamera2_class=lambda n: FakePicamera2(n, [frame], fail_after=2))
    source.open()
    source.read(), source.read()
    with pytest.raises(SourceError, match="stopped delivering"):
        source.read()
    source.close()
    source.open()
    frame = source.read()
    assert frame.image.shape == (48, 64, 3) and frame.gray.shape == (48, 64)
    source.close()
    assert len(FakePicamera2.instances) == 2 and all(c.closed for c in FakePicamera2.instances)


def test_picamera2_missing_camera_is_a_source_error():
    def no_camera(num):
        raise IndexError("list index out of range")

    with pytest.raises(SourceError, match="cannot open Pi camera 0"):
        PiCameraSource(picamera2_class=no_camera).open()


def test_bad_sources_get_a_message_naming_the_problem(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(SourceError, match=r"--source .*empty\.jpg is an empty file \(0 bytes\)"):
        open_source(str(empty))
    for blank in ("", "   "):
        with pytest.raises(SourceError, match="--source is empty; give picamera2"):
            open_source(blank)
    dangling = tmp_path / "dangling.mp4"
    dangling.symlink_to(tmp_path / "gone.mp4")
    with pytest.raises(SourceError, match="broken symbolic link"):
        open_source(str(dangling))


def test_directory_names_what_it_skips(photo_dir, caplog):
    (photo_dir / "sub").mkdir()
    shutil.copy(PHOTOS / "obama_small.jpg", photo_dir / "sub" / "inside.jpg")
    (photo_dir / "f_dangling.jpg").symlink_to(photo_dir / "nowhere.jpg")
    (photo_dir / "g_empty.jpg").write_bytes(b"")
    with open_source(str(photo_dir)) as source:
        frames = list(source)
    assert [Path(f.source).name for f in frames] == ["a.jpg", "b_really_a_jpeg.png"]
    assert f"skipping subfolder {photo_dir / 'sub'}" in caplog.text
    assert f"skipping {photo_dir / 'f_dangling.jpg'}: broken symbolic link" in caplog.text
    assert f"skipping {photo_dir / 'g_empty.jpg'}: empty file" in caplog.text


def test_loop_replays_a_video_and_a_directory(tmp_path, photo_dir):
    clip = make_clip(tmp_path / "clip.avi", frames=5)
    with open_source(str(clip), loop=True) as source:
        frames = [source.read() for _ in range(12)]
    assert source.passes == 2 and source.video and not source.live
    assert [round(f.pts_ms) for f in frames[4:7]] == [133, 0, 33]  # back to the start
    with open_source(str(photo_dir), loop=True) as source:
        names = [Path(source.read().source).name for _ in range(5)]
    assert names == ["a.jpg", "b_really_a_jpeg.png"] * 2 + ["a.jpg"]
    before = open_fds()
    with open_source(str(clip), loop=True) as source:
        for _ in range(30):
            source.read()
    assert open_fds() == before  # every pass released its file
    with pytest.raises(SourceError, match="--loop replays a video file or a directory"):
        open_source("rtsp://192.0.2.1/stream", loop=True)
    with pytest.raises(SourceError, match="--loop .* is one image"):
        open_source(str(photo_dir / "a.jpg"), loop=True)


def test_a_loop_that_finds_nothing_ends(tmp_path):
    folder = tmp_path / "only_text"
    folder.mkdir()
    (folder / "x.txt").write_text("no image")
    with pytest.raises(SourceError, match="no readable image"), open_source(str(folder), loop=True) as source:
        source.read()
