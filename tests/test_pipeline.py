"""The engine end to end with the shipped model: analyze() on generated media, errors, CLI.

TensorFlow and the model load once per test session (the ``engine`` fixture in conftest.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import media
import numpy as np
import pytest

from webapp.detection.errors import CorruptMediaError, UnsupportedMediaError

pytestmark = pytest.mark.engine

ROOT = Path(__file__).resolve().parents[1]
SHARED_VIDEOS = ROOT.parent / "shared" / "data" / "videos"


@pytest.fixture(scope="session")
def gen(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("engine-media")
    return {
        "clip": media.face_clip(d / "face.mp4", seconds=3.0, fps=15),
        "photo": media.face_photo(d / "face.jpg"),
        "no_face": media.no_face_clip(d / "coffee.mp4"),
        "truncated": media.truncated_clip(d / "cut.mp4"),
        "text": media.text_as_mp4(d / "notes.mp4"),
    }


@pytest.fixture(scope="session")
def clip_analysis(engine, gen):
    stages: list[tuple[str, float]] = []
    a = engine.analyze(gen["clip"], progress=lambda s, f: stages.append((s, f)))
    return a, stages


def test_clip_faces_found_and_timestamps(engine, clip_analysis):
    a, _ = clip_analysis
    assert a.media.media_type == "video"
    assert a.frames_sampled == engine.cfg.frames
    assert a.faces_found >= a.frames_sampled - 1  # the face is in every frame
    assert len(a.tracks) >= 1 and a.tracks[0].n_frames >= a.frames_sampled - 1
    stamps = [f.timestamp for f in a.frames if f.track == 0]
    assert stamps == sorted(stamps) and stamps[0] == 0.0
    assert 2.5 <= stamps[-1] <= 3.0  # spread over the whole 3-second clip
    assert np.allclose(np.diff(stamps), np.diff(stamps).mean(), atol=1 / 15 + 1e-3)  # evenly
    for f in a.frames:  # boxes are inside the 480x360 frame
        x0, y0, x1, y1 = f.box
        assert 0 <= x0 < x1 <= 480 and 0 <= y0 < y1 <= 360


def test_clip_verdict_follows_thresholds(engine, clip_analysis):
    a, _ = clip_analysis
    assert a.p_fake is not None and 0.0 <= a.p_fake <= 1.0
    assert a.verdict == engine.cfg.verdict(a.p_fake, "video")
    assert a.p_fake == max(t.p_fake for t in a.tracks)
    assert a.thresholds == engine.cfg.thresholds_for("video")  # a clip is judged by the clip bands
    if engine.cfg.clip_fake_above is not None:
        assert a.thresholds == {"real_below": engine.cfg.clip_real_below, "fake_above": engine.cfg.clip_fake_above}
    assert a.model_version == engine.version
    json.loads(a.to_json())  # serialisable


def test_progress_reports_stages_in_order(clip_analysis):
    _, stages = clip_analysis
    names = [s for s, _ in stages]
    order = ["decode", "detect", "align", "features", "classify", "done"]
    firsts = [names.index(s) for s in order]
    assert firsts == sorted(firsts)
    assert all(0.0 <= f <= 1.0 for _, f in stages)


def test_faces_found_while_decoding(engine, clip_analysis, tmp_path):
    """A clip's faces are searched frame by frame while it decodes; the timings say how the
    time split. A clip with fewer frames than the model samples (the key frames chosen for
    the full count were wrong) is searched again whole, and still found in every frame."""
    import engine_media as em

    a, _ = clip_analysis
    assert {"decode", "detect", "detect_overlapped", "total"} <= set(a.timings)
    assert a.timings["detect_overlapped"] > 0
    short = engine.analyze(em.face_clip(tmp_path / "short.mp4", n_frames=5, fps=25))
    assert short.frames_sampled == 5 and short.faces_found == 5
    assert [t.n_frames for t in short.tracks] == [5]


def test_chips_are_aligned_eyes_level(clip_analysis):
    from webapp.detection.faces import landmarks68

    a, _ = clip_analysis
    assert a.chips and a.chips[0].image.shape == (224, 224, 3)
    for chip in a.chips[::4]:
        lm = landmarks68(chip.image)
        left, right = lm[36:42].mean(0), lm[42:48].mean(0)
        assert abs(left[1] - right[1]) < 0.03 * 224
        assert left[0] < 112 < right[0]


def test_gradcam_on_most_suspicious_frames(clip_analysis):
    a, _ = clip_analysis
    with_heat = [c for c in a.chips if c.heatmap is not None]
    assert 1 <= len(with_heat) <= 3
    top = sorted(c.p_fake for c in a.chips)[-len(with_heat):]
    assert sorted(c.p_fake for c in with_heat) == top
    assert with_heat[0].heatmap.shape == (224, 224, 3)
    assert not np.array_equal(with_heat[0].heatmap, with_heat[0].image)


def test_photo_is_a_sequence_of_one(engine, gen):
    a = engine.analyze(gen["photo"])
    assert a.media.media_type == "image" and a.frames_sampled == 1
    assert a.faces_found == 1 and a.tracks[0].n_frames == 1
    assert a.verdict in {"real", "inconclusive", "fake"}


def test_temporal_masking_length_one_and_n(engine, clip_analysis):
    """Padding a track with masked steps leaves its score unchanged."""
    rng = np.random.default_rng(0)
    c = engine.nets.backbone.output_dim
    for t in (1, 8):
        feats = rng.normal(size=(1, t, c)).astype(np.float32)
        logits = rng.normal(size=(1, t, 1)).astype(np.float32)
        plain = np.asarray(engine.nets.temporal([feats, logits, np.ones((1, t), bool)]))
        padded_f = np.concatenate([feats, rng.normal(size=(1, 5, c)).astype(np.float32)], axis=1)
        padded_l = np.concatenate([logits, np.full((1, 5, 1), 9.0, np.float32)], axis=1)
        mask = np.array([[True] * t + [False] * 5])
        padded = np.asarray(engine.nets.temporal([padded_f, padded_l, mask]))
        assert np.allclose(plain, padded, atol=1e-5)


def test_no_face_is_never_real(engine, gen):
    a = engine.analyze(gen["no_face"])
    assert a.verdict == "no_face" and a.p_fake is None and a.faces_found == 0
    assert a.frames_sampled > 0


def test_truncated_clip_is_refused_clearly(engine, gen):
    """Cut in half, a plain MP4 loses its index (the ``moov`` box is written last): refused.
    (A web-optimised MP4 cut in half is analysed: see the corpus case mp4_half_faststart.)"""
    with pytest.raises(CorruptMediaError, match="damaged or incomplete"):
        engine.analyze(gen["truncated"])


def test_text_file_named_mp4_is_refused(engine, gen):
    with pytest.raises(UnsupportedMediaError, match="neither a photo nor a video"):
        engine.analyze(gen["text"])


def test_rotated_photo_still_finds_the_face(engine, tmp_path):
    img = cv2.rotate(media.astronaut(), cv2.ROTATE_90_CLOCKWISE)
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 8  # stored rotated; EXIF says rotate back 90 degrees counter-clockwise
    p = tmp_path / "rotated.jpg"
    Image.fromarray(img).save(p, "JPEG", exif=exif.tobytes())
    a = engine.analyze(p)
    assert a.faces_found == 1 and (a.media.width, a.media.height) == (512, 512)


def test_cli_detect_lines_and_json(gen, tmp_path):
    from webapp import create_app

    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'cli.db'}"},
                     instance_path=tmp_path / "instance")
    runner = app.test_cli_runner()
    res = runner.invoke(args=["detect", str(gen["photo"]), str(gen["no_face"])])
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 2 and "no_face" in lines[1] and "faces=0" in lines[1]
    res = runner.invoke(args=["detect", "--json", str(gen["photo"]), str(gen["text"])])
    assert res.exit_code == 1  # one file failed
    data = json.loads(res.output[res.output.index("["):])
    assert isinstance(data, list) and data[0]["media"]["media_type"] == "image"
    assert "neither a photo nor a video" in data[1]["error"]


@pytest.mark.shared
def test_real_dfdc_clip(engine):
    a = engine.analyze(SHARED_VIDEOS / "abqwwspghj.mp4")
    assert a.media.width == 1920 and a.frames_sampled == engine.cfg.frames
    assert a.faces_found >= engine.cfg.frames - 2
    assert a.verdict in {"real", "inconclusive", "fake"}


@pytest.fixture(scope="module")
def dim_clips(tmp_path_factory) -> dict[str, Path]:
    import engine_media as em

    d = tmp_path_factory.mktemp("dim")
    return {
        "tiny": em.dim_far_clip(d / "tiny.mp4", face_px=45),
        "far": em.dim_far_clip(d / "far.mp4", face_px=75),
        "near": em.dim_far_clip(d / "near.mp4", face_px=130),
    }


def test_face_too_small_to_judge(engine, dim_clips):
    """A 45 px face in a dark 1080p clip is found, shown and followed, but not judged: the
    verdict says so with its size instead of "no face found" or a score."""
    a = engine.analyze(dim_clips["tiny"])
    line = engine.min_face_px("video")
    assert a.verdict == "no_face" and a.p_fake is None and a.too_small
    assert 30 <= a.largest_face_px < line and a.min_face_px == line
    assert a.tracks and all(not t.judged and t.p_fake is None for t in a.tracks)
    assert a.tracks[0].n_frames == a.frames_sampled
    assert a.chips and all(c.p_fake is None and c.heatmap is None for c in a.chips)
    assert all(f.p_fake is None for f in a.frames)
    assert any("too small to judge" in w for w in a.warnings)
    d = json.loads(a.to_json())
    assert d["largest_face_px"] == a.largest_face_px and d["tracks"][0]["judged"] is False


def test_far_dim_face_is_judged_but_never_vouched_real(engine, dim_clips):
    """Issue 10's case: a ~70 px face in a dark 1080p room gets a score and a verdict. Between
    the judged line and the vouch line the model may say "likely fake" but never "likely real"
    (small faces' fakes drift into the real band): a score in the real band reads "inconclusive"."""
    a = engine.analyze(dim_clips["far"])
    assert engine.min_face_px("video") <= a.largest_face_px < engine.vouch_face_px("video")
    assert a.verdict in {"inconclusive", "fake"} and 0.0 <= a.p_fake <= 1.0
    assert a.tracks[0].judged and all(c.p_fake is not None for c in a.chips)
    real_band = a.p_fake < a.thresholds["real_below"]
    assert a.unvouched == real_band and json.loads(a.to_json())["vouch_face_px"] == a.vouch_face_px


def test_vouch_line_turns_real_band_into_inconclusive(dim_clips, tmp_path):
    """The same clip and scores through a copy of the model whose real band covers everything:
    with the vouch line above the face it reads "inconclusive" (unvouched), with the line at the
    judged line it reads "real". Only the verdict moves, never the score."""
    import shutil

    from conftest import shipped_model

    from webapp.detection.pipeline import Detector

    src = shipped_model()
    dst = shutil.copytree(src, tmp_path / "m")
    cfg = json.loads((dst / "config.json").read_text())
    cfg.update(real_below=1.0, clip_real_below=1.0, fake_above=1.0, clip_fake_above=1.0)
    (dst / "config.json").write_text(json.dumps(cfg))
    det = Detector(dst)
    small = det.analyze(dim_clips["far"], explain=False)
    assert small.verdict == "inconclusive" and small.unvouched
    det.cfg.vouch_face_px = None  # vouch from the judged line
    again = det.analyze(dim_clips["far"], explain=False)
    assert again.verdict == "real" and not again.unvouched and again.p_fake == small.p_fake


def test_small_face_does_not_accuse_without_a_measured_line(dim_clips, tmp_path):
    """The same clip and scores through a copy of the model whose fake band covers everything:
    a 75 px face (under the 100 px vouch line) reads "inconclusive" (unaccused, with a warning)
    while the config records no measured accusing line, and "likely fake" once it records one
    at 60 px. Only the verdict moves, never the score."""
    import shutil

    from conftest import shipped_model

    from webapp.detection.pipeline import Detector

    dst = shutil.copytree(shipped_model(), tmp_path / "m")
    cfg = json.loads((dst / "config.json").read_text())
    cfg.update(real_below=0.0, clip_real_below=0.0, fake_above=0.0, clip_fake_above=0.0,
               min_face_px={"video": 60, "image": 60}, vouch_face_px={"video": 100, "image": 150})
    cfg.pop("small_face_fake_ok_from_px", None)
    (dst / "config.json").write_text(json.dumps(cfg))
    det = Detector(dst)
    small = det.analyze(dim_clips["far"], explain=False)
    assert small.largest_face_px < 100 and det.fake_ok_from_px("video") == 100
    assert small.verdict == "inconclusive" and small.unaccused and not small.unvouched
    assert small.fake_ok_from_px == 100 and any("fake band" in w for w in small.warnings)
    det.cfg.small_face_fake_ok_from_px = {"video": 60}  # as benchmarks.small_faces --write would
    again = det.analyze(dim_clips["far"], explain=False)
    assert again.verdict == "fake" and not again.unaccused and again.p_fake == small.p_fake


def test_dim_face_large_enough_is_judged(engine, dim_clips):
    """The same dark room with the face at 130 px: a real verdict, every frame scored."""
    a = engine.analyze(dim_clips["near"])
    assert a.verdict in {"real", "inconclusive", "fake"} and 0.0 <= a.p_fake <= 1.0
    assert a.largest_face_px >= engine.vouch_face_px("video") and not a.too_small and not a.unvouched
    assert a.tracks[0].judged and a.tracks[0].n_frames == a.frames_sampled
    assert all(c.p_fake is not None for c in a.chips)
