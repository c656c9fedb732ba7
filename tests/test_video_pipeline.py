"""mrcnn.video's run on generated clips: the written video, the YouTube-VIS JSON, the splash
style, the semi-supervised mode and resuming. A stand-in model returns ground-truth-derived
detections (tests/reference/video_scene.py), so no TensorFlow model is needed here."""

import json

import numpy as np
import pytest

from mrcnn.video import (
    annotate_frame,
    color_splash,
    decode_mask,
    read_frames,
    segment_video,
    track_color,
    video_info,
)
from mrcnn.video.io import VideoWriter
from tests.reference import mot
from tests.reference.video_scene import Obj, detections, scene
from tests.test_video_tracking import run_tracker

SHAPE = (120, 200)
FPS = 12.0
NAMES = ["BG", "square", "circle", "triangle"]


class SceneModel:
    """Stands in for MaskRCNN: detect() finds which scene frame it was given (the nearest
    rendered frame, so video compression does not matter) and returns that frame's
    ground-truth-derived detections. Counts the frames it was asked to detect."""

    def __init__(self, images, results):
        self.images = np.stack(images).astype(np.int16)
        self.results = results
        self.calls = []

    def detect(self, frames, verbose=0):
        out = []
        for frame in frames:
            t = int(np.argmin(np.abs(self.images - frame.astype(np.int16)).mean(axis=(1, 2, 3))))
            self.calls.append(t)
            out.append(self.results[t])
        return out


def write_clip(path, images, fps=FPS):
    with VideoWriter(str(path), fps, (images[0].shape[1], images[0].shape[0])) as w:
        for image in images:
            w.write(image)
    return str(path)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    objects = [Obj(1, 1, (255, 60, 60), 20, (25, 20), (0, 4)),
               Obj(2, 2, (60, 255, 60), 22, (60, 180), (0, -4)),
               Obj(3, 3, (60, 60, 255), 24, (95, 40), (0, 3))]
    images, gts, fulls = scene(objects, 24, SHAPE)
    results, gids = detections(objects, gts, fulls, seed=4, drop={(9, 1)},
                               false_positives=[(12, 2, (5, 150, 20, 165))])
    path = write_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", images)
    return {"path": path, "images": images, "gts": gts, "results": results, "gids": gids,
            "objects": objects}


def test_video_and_json(clip, tmp_path):
    model = SceneModel(clip["images"], clip["results"])
    out = segment_video(model, clip["path"], output=str(tmp_path / "out.mp4"),
                        json_path=str(tmp_path / "tracks.json"), batch_size=5,
                        class_names=NAMES, verbose=0)
    assert sorted(model.calls) == list(range(24))  # every frame detected once, in batches
    # The annotated video has the input's frame count, size and fps.
    info_in, info_out = video_info(clip["path"]), video_info(str(tmp_path / "out.mp4"))
    assert (info_out.width, info_out.height) == (info_in.width, info_in.height) == (200, 120)
    assert info_out.fps == pytest.approx(info_in.fps) and info_in.fps == pytest.approx(FPS)
    drawn = list(read_frames(str(tmp_path / "out.mp4")))
    assert len(drawn) == out["frames"] == 24 == info_out.frame_count

    entries = json.load(open(tmp_path / "tracks.json"))
    assert entries == json.loads(json.dumps(out["tracks"]))
    assert len(entries) == 3  # the three objects; the one-frame false positive is not there
    # Back-filled: confirmed at frame 2 (min_hits = 3), reported from frame 0.
    assert all(e["segmentations"][0] is not None for e in entries)
    for e in entries:
        assert set(e) >= {"video_id", "category_id", "segmentations", "score"}
        assert e["video_id"] == 1 and len(e["segmentations"]) == 24
    # The JSON is what the tracker reports (back-filled), mask for mask, through RLE.
    hyps = run_tracker(clip["results"])
    for t in range(24):
        from_json = {e["track_id"]: decode_mask(e["segmentations"][t])
                     for e in entries if e["segmentations"][t] is not None}
        assert sorted(from_json) == sorted(hyps[t])
        for k, m in from_json.items():
            np.testing.assert_array_equal(m, hyps[t][k])
    m = mot.clear_mot(clip["gts"], hyps)
    assert m["id_switches"] == 0 and m["misses"] == 1 and m["false_positives"] == 0
    by_track = {e["track_id"]: e for e in entries}
    for obj, (track,) in m["assignment"].items():
        assert by_track[track]["category_id"] == clip["objects"][obj - 1].class_id
        gids = clip["gids"]
        scores = [float(clip["results"][t]["scores"][gids[t].index(obj)]) for t in range(24)
                  if obj in gids[t]]
        assert by_track[track]["score"] == pytest.approx(np.mean(scores))
    segs = by_track[next(iter(m["assignment"][1]))]["segmentations"]
    assert segs[8] is not None and segs[9] is None and segs[10] is not None  # the dropped one

    # The drawn masks are the JSON's, in the track's colour (mp4v is lossy: tolerances).
    import cv2

    source = list(read_frames(clip["path"]))
    for t in range(0, 24, 3):
        for e in entries:
            if e["segmentations"][t] is None:
                continue
            inner = cv2.erode(decode_mask(e["segmentations"][t]).astype(np.uint8),
                              np.ones((5, 5), np.uint8)).astype(bool)
            inner[:16] = False  # the caption sits at the top of a box
            if inner.sum() < 10:
                continue
            blend = source[t][inner] * 0.5 + track_color(e["track_id"]) * 0.5
            err_blend = np.abs(drawn[t][inner] - blend).mean()
            err_source = np.abs(drawn[t][inner].astype(float) - source[t][inner]).mean()
            assert err_blend < 8 and err_source > 2.5 * err_blend, (err_blend, err_source)
    # Far from every object the frame is unchanged (up to compression).
    assert np.abs(drawn[5][100:, 150:].astype(float) - source[5][100:, 150:]).mean() < 3


def test_annotate_frame_changes_only_masks_outlines_and_captions():
    image = np.full((60, 80, 3), 100, np.uint8)
    masks = np.zeros((60, 80, 2), bool)
    masks[20:40, 10:30, 0] = True
    masks[30:50, 50:70, 1] = True
    boxes = np.array([[20, 10, 40, 30], [30, 50, 50, 70]])
    out = annotate_frame(image, boxes, masks, [3, 8], ["square", "circle"])
    inner = np.zeros((60, 80), bool)
    inner[22:38, 12:28] = True  # inside mask 0, off its outline, below its caption
    inner[:30] = False
    np.testing.assert_array_equal(out[inner], (100 * 0.5 + track_color(3) * 0.5).astype(np.uint8)
                                  [None].repeat(inner.sum(), 0))
    changed = np.any(out != image, axis=-1)
    near = np.zeros((60, 80), bool)
    for y1, x1, y2, x2 in boxes:
        near[max(y1 - 12, 0):y2 + 1, max(x1 - 1, 0):x2 + 40] = True
    assert not changed[~near].any()


def test_track_colours_are_a_function_of_the_id():
    colours = [tuple(track_color(i)) for i in range(1, 21)]
    assert colours == [tuple(track_color(i)) for i in range(1, 21)]
    assert len(set(colours)) == 20


def test_color_splash_matches_skimage_gray():
    import skimage.color

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    mask = np.zeros((30, 40, 2), bool)
    mask[5:10, 5:10, 0] = mask[20:25, 30:35, 1] = True
    gray = (skimage.color.gray2rgb(skimage.color.rgb2gray(image)) * 255).astype(np.uint8)
    want = np.where(mask.any(-1, keepdims=True), image, gray)
    np.testing.assert_array_equal(color_splash(image, mask), want)
    np.testing.assert_array_equal(color_splash(image, mask[..., :0]), gray)


def test_splash_style(clip, tmp_path):
    model = SceneModel(clip["images"], clip["results"])
    out = segment_video(model, clip["path"], output=str(tmp_path / "splash.mp4"),
                        json_path=str(tmp_path / "t.json"), style="splash", verbose=0)
    frames = list(read_frames(str(tmp_path / "splash.mp4")))
    assert len(frames) == 24
    import cv2

    t = 6
    m = np.any([decode_mask(e["segmentations"][t]) for e in out["tracks"]], axis=0)
    inner = cv2.erode(m.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    outer = ~cv2.dilate(m.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    f = frames[t].astype(float)
    saturation = f.max(-1) - f.min(-1)  # gray: 0 (up to compression)
    assert saturation[outer].mean() < 4 and saturation[inner].mean() > 100


def test_semi_supervised_follows_only_the_given_object(clip, tmp_path):
    from PIL import Image

    label = np.zeros(SHAPE, np.uint8)
    label[clip["gts"][0][2]] = 5  # object 2 (the circle) is object 5 of the label image
    im = Image.fromarray(label, mode="L").convert("P")  # a palette PNG, as in DAVIS
    im.save(tmp_path / "first.png")
    model = SceneModel(clip["images"], clip["results"])
    out = segment_video(model, clip["path"], json_path=str(tmp_path / "semi.json"),
                        first_frame_masks=str(tmp_path / "first.png"), verbose=0)
    (entry,) = json.load(open(tmp_path / "semi.json"))
    assert entry["object_id"] == 5 and entry["category_id"] == 2
    assert entry == json.loads(json.dumps(out["tracks"][0]))
    for t, rle in enumerate(entry["segmentations"]):
        assert rle is not None  # object 2 is detected in every frame
        assert mot.mask_iou(decode_mask(rle), clip["gts"][t][2]) > 0.6
    # Boolean masks through the API give the same result.
    again = segment_video(SceneModel(clip["images"], clip["results"]), clip["path"],
                          json_path=str(tmp_path / "semi2.json"), verbose=0,
                          first_frame_masks=clip["gts"][0][2][..., None])
    assert again["tracks"][0]["segmentations"] == entry["segmentations"]


def test_first_frame_mask_errors(clip, tmp_path):
    from PIL import Image

    model = SceneModel(clip["images"], clip["results"])
    Image.fromarray(np.zeros(SHAPE + (3,), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match="rgb.png.*mode RGB"):
        segment_video(model, clip["path"], json_path=str(tmp_path / "x.json"),
                      first_frame_masks=str(tmp_path / "rgb.png"), verbose=0)
    with pytest.raises(ValueError, match="no object"):
        segment_video(model, clip["path"], json_path=str(tmp_path / "x.json"),
                      first_frame_masks=np.zeros(SHAPE, np.uint8), verbose=0)
    small = np.zeros((10, 10), np.uint8)
    small[2:5, 2:5] = 1
    with pytest.raises(ValueError, match="first-frame masks are 10x10, the video .* is 200x120"):
        segment_video(model, clip["path"], json_path=str(tmp_path / "x.json"),
                      first_frame_masks=small, verbose=0)
    nowhere = np.zeros(SHAPE, np.uint8)
    nowhere[0:3, 0:3] = 7  # background only: overlaps no detection
    with pytest.warns(UserWarning, match="object 7 overlaps no detection"):
        out = segment_video(model, clip["path"], json_path=str(tmp_path / "none.json"),
                            first_frame_masks=nowhere, verbose=0)
    assert out["tracks"] == [] and json.load(open(tmp_path / "none.json")) == []
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        segment_video(model, str(tmp_path / "nope.mp4"), json_path=str(tmp_path / "x.json"))


def test_resume_skips_detected_batches_and_gives_the_same_outputs(clip, tmp_path):
    full = segment_video(SceneModel(clip["images"], clip["results"]), clip["path"],
                         json_path=str(tmp_path / "full.json"), batch_size=4, verbose=0)
    model = SceneModel(clip["images"], clip["results"])
    out = str(tmp_path / "resumed.json")
    assert segment_video(model, clip["path"], json_path=out, batch_size=4, stop_after=8,
                         verbose=0) is None
    assert model.calls == list(range(8))
    partial = tmp_path / "resumed.json.partial.jsonl"
    lines = partial.read_text().splitlines()
    assert len(lines) == 8 and json.loads(lines[3])["file_name"] == "clip.mp4#3"
    # A kill while writing the third batch: two of its lines, the second cut off.
    with open(partial, "a") as f:
        f.write(lines[0].replace("#0", "#8") + "\n" + lines[1][:40])
    model = SceneModel(clip["images"], clip["results"])
    resumed = segment_video(model, clip["path"], json_path=out, batch_size=4, verbose=0)
    assert model.calls == list(range(8, 24))  # the incomplete batch 8-11 is redone whole
    assert resumed["detected_frames"] == 16 and not partial.exists()
    assert json.load(open(out)) == json.load(open(tmp_path / "full.json")) == \
        json.loads(json.dumps(full["tracks"]))
    # A partial file left by another video of the same name is refused, by name.
    record = json.loads(lines[0])
    partial.write_text(json.dumps(dict(record, width=64)) + "\n")
    with pytest.raises(ValueError, match="resumed.json.partial.jsonl .* another video"):
        segment_video(model, clip["path"], json_path=out, batch_size=1, verbose=0)
