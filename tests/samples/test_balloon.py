"""Balloon sample: VIA 1.x / 2.x loading, bad annotations, color splash on images and video."""

import json
import logging
import os

import numpy as np
import pytest

from samples.balloon.balloon import BalloonDataset, color_splash, detect_and_color_splash

H, W = 48, 64
REGIONS = [  # (class name, xs, ys)
    ("red", [5, 25, 25, 5], [5, 5, 20, 20]),
    ("blue", [40, 60, 50], [10, 10, 40]),
]


def _write_images(folder, names):
    import skimage.io

    for name in names:
        skimage.io.imsave(str(folder / name), np.full((H, W, 3), 120, np.uint8),
                          check_contrast=False)


def _region(name, xs, ys, with_class):
    return {"shape_attributes": {"name": "polygon", "all_points_x": xs, "all_points_y": ys},
            "region_attributes": {"name": name} if with_class else {}}


def _write_via(folder, version, with_class=True, extra=None):
    folder.mkdir(parents=True, exist_ok=True)
    regions = [_region(n, xs, ys, with_class) for n, xs, ys in REGIONS]
    entry = {"filename": "a.png", "size": 123, "file_attributes": {}}
    if version == 1:
        entry["regions"] = {str(i): r for i, r in enumerate(regions)}
    else:
        entry["regions"] = regions
    data = {"a.png123": entry}
    data.update(extra or {})
    (folder / "via_region_data.json").write_text(json.dumps(data))
    _write_images(folder, ["a.png"])


def _load(root, subset="train"):
    ds = BalloonDataset()
    ds.load_balloon(str(root), subset)
    ds.prepare()
    return ds


def test_via1_and_via2_give_the_same_masks(tmp_path):
    _write_via(tmp_path / "v1" / "train", 1)
    _write_via(tmp_path / "v2" / "train", 2)
    m1, c1 = _load(tmp_path / "v1").load_mask(0)
    m2, c2 = _load(tmp_path / "v2").load_mask(0)
    np.testing.assert_array_equal(m1, m2)
    assert c1.tolist() == c2.tolist() == [2, 1]  # classes sorted by name: blue=1, red=2
    assert m1.shape == (H, W, 2) and m1[10, 10, 0] and not m1[10, 10, 1]
    ds = _load(tmp_path / "v2")
    assert ds.class_names == ["BG", "blue", "red"]


def test_single_class_without_region_attribute(tmp_path):
    _write_via(tmp_path / "train", 2, with_class=False)
    ds = _load(tmp_path)
    assert ds.class_names == ["BG", "balloon"]
    assert ds.load_mask(0)[1].tolist() == [1, 1]


def test_bad_annotations_warn_naming_file_and_region(tmp_path, caplog):
    extra = {"missing.png1": {"filename": "missing.png", "regions": [_region("red", [1, 2, 3],
                                                                             [1, 5, 1], True)]},
             "empty.png1": {"filename": "a.png", "regions": []}}
    _write_via(tmp_path / "train", 2, extra=extra)
    data = json.loads((tmp_path / "train" / "via_region_data.json").read_text())
    data["a.png123"]["regions"][0]["shape_attributes"]["all_points_x"] = [-10, 25, 25, -10]
    (tmp_path / "train" / "via_region_data.json").write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING):
        ds = _load(tmp_path)
        masks, _ = ds.load_mask(0)
    text = caplog.text
    assert "missing.png" in text and "no regions" in text
    assert "a.png region 0" in text and "outside" in text
    assert ds.num_images == 1 and masks[10, 0, 0]  # clipped, not dropped


def test_color_splash_keeps_colour_only_inside_masks():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    mask = np.zeros((H, W, 2), bool)
    mask[5:10, 5:10, 0] = True
    mask[20:30, 40:50, 1] = True
    out = color_splash(image, mask)
    inside = mask.any(-1)
    np.testing.assert_array_equal(out[inside], image[inside])
    outside = out[~inside]
    assert (outside[:, 0] == outside[:, 1]).all() and (outside[:, 1] == outside[:, 2]).all()
    gray = color_splash(image, np.zeros((H, W, 0), bool))
    assert (gray[..., 0] == gray[..., 2]).all()


class HalfMaskModel:
    """detect() returns one instance covering the left half of the frame."""

    def __init__(self):
        self.calls = 0

    def detect(self, images, verbose=0):
        self.calls += 1
        h, w = images[0].shape[:2]
        m = np.zeros((h, w, 1), bool)
        m[:, : w // 2] = True
        return [{"rois": np.array([[0, 0, h, w // 2]]), "class_ids": np.array([1]),
                 "scores": np.array([0.99]), "masks": m}]


def test_video_round_trip_keeps_frame_count_size_and_fps(tmp_path):
    cv2 = pytest.importorskip("cv2")
    src = str(tmp_path / "in.avi")
    writer = cv2.VideoWriter(src, cv2.VideoWriter_fourcc(*"MJPG"), 12.0, (W, H))
    for k in range(5):
        frame = np.zeros((H, W, 3), np.uint8)
        frame[..., 2] = 200  # red in BGR
        frame[..., 1] = 40 * k
        writer.write(frame)
    writer.release()
    model = HalfMaskModel()
    out = detect_and_color_splash(model, video_path=src, out_dir=str(tmp_path))
    cap = cv2.VideoCapture(out)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    assert model.calls == 5 and len(frames) == 5 and fps == pytest.approx(12.0)
    assert frames[0].shape == (H, W, 3)
    left, right = frames[0][:, : W // 2 - 4].astype(int), frames[0][:, W // 2 + 4:].astype(int)
    assert (left[..., 2] - left[..., 0]).mean() > 100  # colour kept on the left
    assert np.abs(right[..., 2] - right[..., 0]).mean() < 10  # gray on the right


def test_image_splash_uses_its_argument(tmp_path):
    import skimage.io

    _write_images(tmp_path, ["photo.png"])
    out = detect_and_color_splash(HalfMaskModel(), image_path=str(tmp_path / "photo.png"),
                                  out_dir=str(tmp_path / "out"))
    assert skimage.io.imread(out).shape == (H, W, 3)
    with pytest.raises(ValueError):
        detect_and_color_splash(HalfMaskModel())


def _write_shapes_via(folder, count, seed):
    """Random squares and triangles as VIA 2.x polygons over random backgrounds."""
    import skimage.draw
    import skimage.io

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    data = {}
    for i in range(count):
        image = np.empty((128, 128, 3), np.uint8)
        image[:] = rng.integers(0, 256, 3)
        regions = []
        for _ in range(int(rng.integers(1, 3))):
            x, y, s = rng.integers(25, 100), rng.integers(25, 100), rng.integers(8, 20)
            if rng.random() < 0.5:
                xs, ys = [x - s, x + s, x + s, x - s], [y - s, y - s, y + s, y + s]
            else:
                xs, ys = [x, x - s, x + s], [y - s, y + s, y + s]
            rr, cc = skimage.draw.polygon(ys, xs, shape=(128, 128))
            image[rr, cc] = rng.integers(0, 256, 3)
            regions.append(_region(None, [int(v) for v in xs], [int(v) for v in ys], False))
        name = f"img{i}.png"
        skimage.io.imsave(str(folder / name), image, check_contrast=False)
        data[name] = {"filename": name, "regions": regions}
    (folder / "via_region_data.json").write_text(json.dumps(data))


@pytest.mark.slow
def test_train_then_splash_end_to_end(tmp_path):
    from mrcnn import model as modellib
    from samples.balloon import balloon
    from tests.conftest import TinyConfig

    _write_shapes_via(tmp_path / "data" / "train", 8, 0)
    _write_shapes_via(tmp_path / "data" / "val", 2, 1)
    attrs = {k: getattr(TinyConfig, k) for k in dir(TinyConfig) if k.isupper()}
    attrs.update(NAME="balloon", NUM_CLASSES=2, STEPS_PER_EPOCH=3, VALIDATION_STEPS=1)
    config = type("Cfg", (balloon.BalloonConfig,), attrs)()
    model = modellib.MaskRCNN("training", config, str(tmp_path / "logs"))
    history = balloon.train(model, str(tmp_path / "data"), epochs=1, layers="all")
    assert np.isfinite(history.history["loss"]).all()
    infer = type("Infer", (type(config),), {"IMAGES_PER_GPU": 1,
                                            "DETECTION_MIN_CONFIDENCE": 0.0})()
    inference = modellib.MaskRCNN("inference", infer, str(tmp_path / "logs"))
    inference.load_weights(inference.find_last(), by_name=True, verbose=0)
    out = balloon.detect_and_color_splash(inference, image_path=str(
        tmp_path / "data" / "val" / "img0.png"), out_dir=str(tmp_path / "out"))
    import skimage.io

    assert skimage.io.imread(out).shape == (128, 128, 3)


# ---------------------------------------------------------------- the real photos (../shared/data)

def _real_dir():
    from mrcnn.weights import SHARED_DATA_DIR

    return os.path.join(SHARED_DATA_DIR, "balloon")


needs_real = pytest.mark.skipif(not os.path.isdir(_real_dir()),
                                reason=f"real balloon data not found at {_real_dir()}")


@needs_real
@pytest.mark.slow
@pytest.mark.parametrize("subset, images, polygons", [("train", 61, 255), ("val", 13, 50)])
def test_real_data_loads_as_released(subset, images, polygons, caplog):
    with caplog.at_level(logging.WARNING):
        ds = _load(_real_dir(), subset)
        total = 0
        for i in ds.image_ids:
            masks, class_ids = ds.load_mask(i)
            info = ds.image_info[i]
            assert masks.shape[:2] == (info["height"], info["width"]), info["id"]
            assert masks.dtype == bool and class_ids.tolist() == [1] * masks.shape[-1]
            # Every polygon rasterises to a non-empty mask inside the image (the 13 train
            # polygons with a vertex on x == width or y == height included).
            assert masks.shape[-1] == len(info["polygons"]), info["id"]
            assert masks.any(axis=(0, 1)).all(), info["id"]
            total += masks.shape[-1]
    assert ds.num_images == images and total == polygons
    assert ds.class_names == ["BG", "balloon"]
    assert "outside" not in caplog.text and "covers no pixel" not in caplog.text


def _real_val_photo():
    ds = _load(_real_dir(), "val")
    # The val photo with the largest balloon area: a well-defined inside and outside.
    best = max(ds.image_ids, key=lambda i: ds.load_mask(i)[0].sum())
    image = ds.load_image(best)
    masks, _ = ds.load_mask(best)
    return image, masks


@needs_real
def test_splash_on_a_real_photo_keeps_colour_inside_the_balloons():
    image, masks = _real_val_photo()
    out = color_splash(image, masks)
    inside = masks.any(-1)
    assert 0.02 < inside.mean() < 0.9
    np.testing.assert_array_equal(out[inside], image[inside])
    outside = out[~inside].astype(int)
    assert (outside[:, 0] == outside[:, 1]).all() and (outside[:, 1] == outside[:, 2]).all()
    # The grey is the photo's luminance (ITU-R 601-2 / skimage weights), not a constant.
    lum = image[~inside].astype(float) @ np.array([0.2125, 0.7154, 0.0721])
    assert np.abs(outside[:, 0] - lum).max() <= 1.0 + 1e-9
    # The photo is colourful where the balloons are, so keeping colour is visible.
    kept = out[inside].astype(int)
    assert np.abs(kept[:, 0] - kept[:, 2]).mean() > 20


class GroundTruthVideoModel:
    """detect() returns, for frame k, the ground-truth masks of the k-th source photo."""

    def __init__(self, masks):
        self.masks = masks
        self.calls = 0

    def detect(self, images, verbose=0):
        m = self.masks[self.calls]
        self.calls += 1
        assert images[0].shape[:2] == m.shape[:2]
        n = m.shape[-1]
        return [{"rois": np.zeros((n, 4), np.int32), "class_ids": np.ones(n, np.int32),
                 "scores": np.ones(n, np.float32), "masks": m}]


@needs_real
@pytest.mark.slow
def test_video_splash_on_a_clip_of_real_photos(tmp_path):
    cv2 = pytest.importorskip("cv2")
    from mrcnn.ops.image import resize

    ds = _load(_real_dir(), "val")
    size = (360, 480)  # (height, width) of the clip
    frames, masks = [], []
    for i in ds.image_ids[:6]:
        image = ds.load_image(i)
        m, _ = ds.load_mask(i)
        frames.append(resize(image, size, preserve_range=True).round().astype(np.uint8))
        masks.append(resize(m.astype(np.uint8), size, order=0,
                            preserve_range=True).astype(bool))
    src = str(tmp_path / "clip.mp4")
    writer = cv2.VideoWriter(src, cv2.VideoWriter_fourcc(*"mp4v"), 10.0, size[::-1])
    assert writer.isOpened()
    for f in frames:
        writer.write(np.ascontiguousarray(f[..., ::-1]))
    writer.release()
    # What the model sees is the decoded clip: its frames, compared with the source photos.
    model = GroundTruthVideoModel(masks)
    out = detect_and_color_splash(model, video_path=src, out_dir=str(tmp_path))
    cap = cv2.VideoCapture(out)
    decoded = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        decoded.append(frame[..., ::-1].astype(int))
    cap.release()
    assert model.calls == len(frames) == len(decoded)
    for src_frame, out_frame, m in zip(frames, decoded, masks):
        assert out_frame.shape == size + (3,)
        inside = m.any(-1)
        # Erode the mask edges: lossy codecs blur a few pixels across them.
        core = inside & np.roll(inside, 3, 0) & np.roll(inside, -3, 0) & \
            np.roll(inside, 3, 1) & np.roll(inside, -3, 1)
        far = ~inside & ~np.roll(inside, 3, 0) & ~np.roll(inside, -3, 0) & \
            ~np.roll(inside, 3, 1) & ~np.roll(inside, -3, 1)
        o_in, s_in = out_frame[core], src_frame[core].astype(int)
        assert np.abs(o_in - s_in).mean() < 12  # balloon pixels keep their colour
        chroma_src = np.abs(s_in[:, 0] - s_in[:, 2]).mean()
        assert np.abs(o_in[:, 0] - o_in[:, 2]).mean() > 0.6 * chroma_src
        o_out = out_frame[far]
        assert np.abs(o_out[:, 0] - o_out[:, 1]).mean() < 4  # the rest is grey
        assert np.abs(o_out[:, 1] - o_out[:, 2]).mean() < 4


@needs_real
@pytest.mark.slow
def test_short_seeded_training_on_real_photos_lowers_the_loss(tmp_path):
    """60 steps of the mini model at 192 px from random weights: the training loss
    falls, and evaluation runs end to end on the 13 full-size val photos."""
    from samples.balloon import train

    summary = train.main(["--dataset", _real_dir(), "--weights", "none", "--epochs", "4",
                          "--lr-drop-epochs", "0", "--steps-per-epoch", "15",
                          "--image-size", "192", "--seed", "0", "--workers", "1",
                          "--logs", str(tmp_path / "logs"), "--out", str(tmp_path / "out")])
    with open(summary["curve_json"]) as f:
        curve = json.load(f)
    losses = [e["loss"] for e in curve]
    assert len(losses) == 4 and np.isfinite(losses).all()
    # The first steps from random weights are noisy (the box losses grow while the RPN starts
    # proposing positives): compare the last epoch with the first two.
    assert losses[-1] < min(losses[:2]), losses
    assert summary["val_images"] == 13 and len(summary["per_image"]) == 13
    assert sum(r["gt"] for r in summary["per_image"]) == 50
    assert 0.0 <= summary["mask_mAP50"] <= 1.0
    assert os.path.isfile(summary["splash"]) and os.path.isfile(summary["curve"])


def test_hue_shift_turns_colours_and_leaves_masks_alone():
    """--hue-shift adds a hue rotation that changes a red patch's colour, and it is not one of
    the augmenters applied to masks (so masks keep their shape under it)."""
    pytest.importorskip("imgaug")
    from mrcnn.data_generator import MASK_AUGMENTERS
    from samples.balloon import train

    plain = train.augmentation(train.parse_args(["--dataset", "x"]))
    turned = train.augmentation(train.parse_args(["--dataset", "x", "--hue-shift", "255"]))
    names = [type(a.then_list[0]).__name__ for a in turned if hasattr(a, "then_list")]
    assert "AddToHue" in names and len(turned) == len(plain) + 1
    assert "AddToHue" not in MASK_AUGMENTERS
    hue = turned[-1].then_list[0]
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 200
    colours = {tuple(hue.to_deterministic().augment_image(red)[4, 4]) for _ in range(20)}
    assert len(colours) > 5 and any(c[2] > c[0] for c in colours)  # some turn blue
