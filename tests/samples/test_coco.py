"""COCO sample on a small COCO-format dataset written by the test."""

import contextlib
import io
import json
import os

import numpy as np
import pytest

pytest.importorskip("pycocotools")

from pycocotools import mask as mask_utils  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

from mrcnn import evaluation  # noqa: E402
from mrcnn.ops.masks import extract_bboxes  # noqa: E402
from mrcnn.weights import SHARED_DATA_DIR  # noqa: E402
from samples.coco.coco import CocoDataset, build_coco_results, evaluate_coco  # noqa: E402

H, W = 40, 50


def _rle(mask):
    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    r["counts"] = r["counts"].decode("ascii")
    return r


def _uncompressed_rle(mask):
    flat = mask.astype(np.uint8).flatten(order="F")
    counts, current, run = [], 0, 0
    for v in flat:
        if v != current:
            counts.append(run)
            current, run = v, 0
        run += 1
    counts.append(run)
    return {"size": [H, W], "counts": counts}


def _box(mask):
    y1, x1, y2, x2 = extract_bboxes(mask[..., None])[0]
    return [float(x1), float(y1), float(x2 - x1), float(y2 - y1)]


@pytest.fixture
def coco_dir(tmp_path):
    import skimage.io

    (tmp_path / "annotations").mkdir()
    (tmp_path / "val2017").mkdir()
    masks = {}
    m = np.zeros((H, W), bool)
    m[5:15, 5:20] = True  # drawn as a polygon below
    masks[1] = m
    m = np.zeros((H, W), bool)
    m[20:35, 10:30] = True
    m[25:30, 15:20] = False  # a hole: only RLE can say this
    masks[2] = m
    m = np.zeros((H, W), bool)
    m[2:12, 30:45] = True
    masks[3] = m
    crowd = np.zeros((H, W), bool)
    crowd[20:38, 32:48] = True
    anns = [
        {"id": 1, "image_id": 1, "category_id": 3, "iscrowd": 0,
         "segmentation": [[5, 5, 20, 5, 20, 15, 5, 15]], "area": 150.0, "bbox": [5, 5, 15, 10]},
        {"id": 2, "image_id": 1, "category_id": 7, "iscrowd": 0, "segmentation": _rle(masks[2]),
         "area": float(masks[2].sum()), "bbox": _box(masks[2])},
        {"id": 3, "image_id": 2, "category_id": 3, "iscrowd": 0,
         "segmentation": _uncompressed_rle(masks[3]), "area": float(masks[3].sum()),
         "bbox": _box(masks[3])},
        {"id": 4, "image_id": 2, "category_id": 7, "iscrowd": 1,
         "segmentation": _uncompressed_rle(crowd), "area": float(crowd.sum()),
         "bbox": _box(crowd)},
    ]
    images = [{"id": i, "file_name": f"{i:012d}.png", "height": H, "width": W}
              for i in (1, 2, 3)]
    for info in images:
        skimage.io.imsave(str(tmp_path / "val2017" / info["file_name"]),
                          np.full((H, W, 3), 90, np.uint8), check_contrast=False)
    cats = [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}]
    (tmp_path / "annotations" / "instances_val2017.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return tmp_path, masks, crowd


def _load(coco_dir):
    ds = CocoDataset()
    coco = ds.load_coco(str(coco_dir), "val", year=2017, return_coco=True)
    ds.prepare()
    return ds, coco


def test_loads_polygons_rle_crowds_and_empty_images(coco_dir):
    path, masks, crowd = coco_dir
    ds, _ = _load(path)
    assert ds.num_images == 3 and ds.num_classes == 3
    assert ds.class_names == ["BG", "cat", "dog"]
    m, ids = ds.load_mask(0)
    assert ids.tolist() == [1, 2] and m.dtype == bool and m.shape == (H, W, 2)
    assert abs(int(m[..., 0].sum()) - 150) <= 30  # polygon rasterization
    np.testing.assert_array_equal(m[..., 1], masks[2])
    m, ids = ds.load_mask(1)
    assert ids.tolist() == [1, -2]  # the crowd has a negative class id
    np.testing.assert_array_equal(m[..., 0], masks[3])
    np.testing.assert_array_equal(m[..., 1], crowd)
    m, ids = ds.load_mask(2)
    assert m.shape == (H, W, 0) and ids.size == 0
    assert ds.load_image(2).shape == (H, W, 3)


class GroundTruthModel:
    """detect() returns an image's ground truth (crowds excluded), optionally perturbed."""

    def __init__(self, dataset, shift=0, scores=None):
        self.dataset, self.shift, self.scores = dataset, shift, scores
        self.index = {}

    def detect(self, images, verbose=0):
        image_id = self.index_of(images[0])
        m, ids = self.dataset.load_mask(image_id)
        keep = ids > 0
        m, ids = m[..., keep], ids[keep]
        if self.shift:
            m = np.roll(m, self.shift, axis=1)
        scores = np.linspace(0.9, 0.5, len(ids)) if self.scores is None else self.scores[:len(ids)]
        return [{"rois": extract_bboxes(m), "class_ids": ids, "scores": scores, "masks": m}]

    def index_of(self, image):
        # The test images are identical: track calls in order instead.
        n = self.index.setdefault("n", 0)
        self.index["n"] = n + 1
        return n % self.dataset.num_images


def test_ground_truth_as_predictions_scores_one(coco_dir):
    path, _, _ = coco_dir
    ds, coco = _load(path)
    with contextlib.redirect_stdout(io.StringIO()):
        stats = evaluate_coco(GroundTruthModel(ds), ds, coco, "both", verbose=0)
    assert stats["bbox"]["AP"] == pytest.approx(1.0)
    assert stats["segm"]["AP"] == pytest.approx(1.0)


def test_in_memory_ground_truth_matches_direct_cocoeval_on_the_file(coco_dir):
    path, _, _ = coco_dir
    ds, _ = _load(path)
    model = GroundTruthModel(ds, shift=2)
    ours = evaluation.evaluate_dataset(model, ds, verbose=0)
    # The same detections, evaluated by pycocotools directly against the JSON file.
    model = GroundTruthModel(ds, shift=2)
    results = []
    for image_id in ds.image_ids:
        r = model.detect([None])[0]
        results += evaluation.detections_to_coco(ds, ds.image_info[image_id]["id"], r)
    _assert_equals_cocoeval(ours["coco_segm"], path / "annotations" / "instances_val2017.json",
                            results, "segm")


def _assert_equals_cocoeval(ours, gt_file, results, iou_type):
    """Our AP, AP50, AP75 equal pycocotools' COCOeval of `results` against the JSON file, and
    AP lies strictly between 0 and 1 (the perturbation mattered)."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_file))
        ev = COCOeval(gt, gt.loadRes(results), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    for k, name in enumerate(["AP", "AP50", "AP75"]):
        assert ours[name] == pytest.approx(ev.stats[k], abs=1e-9), name
    assert 0 < ours["AP"] < 1


def _matterport_evaluation_loop(model, dataset, coco, eval_type, limit=0, image_ids=None):
    """matterport's samples/coco/coco.py evaluate_coco loop, call for call; returns
    COCOeval.stats."""
    image_ids = image_ids or dataset.image_ids
    if limit:
        image_ids = image_ids[:limit]
    coco_image_ids = [dataset.image_info[id]["id"] for id in image_ids]
    results = []
    for i, image_id in enumerate(image_ids):
        image = dataset.load_image(image_id)
        r = model.detect([image], verbose=0)[0]
        image_results = build_coco_results(dataset, coco_image_ids[i:i + 1], r["rois"],
                                           r["class_ids"], r["scores"],
                                           r["masks"].astype(np.uint8))
        results.extend(image_results)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_results = coco.loadRes(results)
        cocoEval = COCOeval(coco, coco_results, eval_type)
        cocoEval.params.imgIds = coco_image_ids
        cocoEval.evaluate()
        cocoEval.accumulate()
        cocoEval.summarize()
    return cocoEval.stats


@pytest.mark.parametrize("eval_type", ["bbox", "segm"])
def test_matterport_evaluation_loop_equals_evaluate_coco(coco_dir, eval_type):
    path, _, _ = coco_dir
    ds, coco = _load(path)
    theirs = _matterport_evaluation_loop(GroundTruthModel(ds, shift=2), ds, coco, eval_type)
    ours = evaluate_coco(GroundTruthModel(ds, shift=2), ds, coco, eval_type, verbose=0)
    assert 0 < theirs[0] < 1  # shifted masks: neither perfect nor zero
    for k, name in enumerate(evaluation.COCO_STAT_NAMES):
        assert ours[eval_type][name] == pytest.approx(theirs[k], abs=1e-12), name


def test_build_coco_results_has_matterports_contract(coco_dir):
    path, _, _ = coco_dir
    ds, _ = _load(path)
    rois = np.array([[5, 6, 15, 21], [20, 10, 35, 30]], np.int32)
    masks = np.zeros((H, W, 2), np.uint8)
    masks[5:15, 6:21, 0] = 1
    masks[20:35, 10:30, 1] = 1
    class_ids = np.array([2, 1], np.int32)  # internal ids of "dog" (COCO 7) and "cat" (3)
    scores = np.array([0.9, 0.25], np.float32)
    coco_ids = [ds.image_info[i]["id"] for i in ds.image_ids]
    results = build_coco_results(ds, coco_ids[1:2], rois, class_ids, scores, masks)
    assert [r["image_id"] for r in results] == [2, 2]
    assert [r["category_id"] for r in results] == [7, 3]
    assert results[0]["bbox"] == [6.0, 5.0, 15.0, 10.0]  # [x, y, w, h]
    assert results[1]["score"] == pytest.approx(0.25)
    for k, r in enumerate(results):
        np.testing.assert_array_equal(mask_utils.decode(r["segmentation"]), masks[:, :, k])
    assert build_coco_results(ds, coco_ids[:1], None, None, None, None) == []
    assert build_coco_results(ds, coco_ids[:1], rois[:0], class_ids[:0], scores[:0],
                              masks[..., :0]) == []
    with pytest.raises(ValueError, match="one image's detections"):  # our old per-image lists
        build_coco_results(ds, coco_ids[:1], [rois], [class_ids], [scores], [masks])


@pytest.mark.slow
def test_matterport_loop_with_a_real_model(coco_dir, tmp_path):
    from mrcnn import model as modellib
    from tests.conftest import TinyConfig

    path, _, _ = coco_dir
    ds, coco = _load(path)
    config = type("C", (TinyConfig,), {"NUM_CLASSES": 3, "IMAGES_PER_GPU": 1,
                                       "DETECTION_MIN_CONFIDENCE": 0.0})()
    model = modellib.MaskRCNN("inference", config, str(tmp_path))
    theirs = _matterport_evaluation_loop(model, ds, coco, "segm")
    ours = evaluate_coco(model, ds, coco, "segm", verbose=0)["segm"]
    for k, name in enumerate(evaluation.COCO_STAT_NAMES):
        assert ours[name] == pytest.approx(theirs[k], abs=1e-12), name


def test_download_and_missing_files_fail_clearly(coco_dir):
    path, _, _ = coco_dir
    with pytest.raises(RuntimeError, match="does not download"):
        CocoDataset().load_coco(str(path), "train", year=2017, auto_download=True)
    with pytest.raises(FileNotFoundError, match="instances_train2014.json"):
        CocoDataset().load_coco(str(path), "train")


def test_weights_names_resolve_locally_or_fail_clearly():
    from samples.coco.coco import COCO_WEIGHTS_NAME, ROOT, resolve_weights

    class Model:  # the two MaskRCNN methods resolve_weights may call
        def get_imagenet_weights(self):
            return "/weights/of/this/backbone.h5"

        def find_last(self):
            return "/logs/last.h5"

    model = Model()
    assert resolve_weights(model, "imagenet", "logs") == "/weights/of/this/backbone.h5"
    assert resolve_weights(model, "last", "logs") == "/logs/last.h5"
    assert resolve_weights(model, "my.h5", "logs") == "my.h5"
    if any(os.path.isfile(os.path.join(d, COCO_WEIGHTS_NAME)) for d in (ROOT, SHARED_DATA_DIR)):
        pytest.skip("mask_rcnn_coco.h5 is present")
    with pytest.raises(FileNotFoundError, match="mask_rcnn_coco.h5.*does not download"):
        resolve_weights(model, "coco", "logs")


def _shared_coco():
    """(dataset_dir, subset, year) of a COCO-format dataset in ../shared/data, if any."""
    import glob

    pattern = os.path.join(SHARED_DATA_DIR, "*", "annotations", "instances_*.json")
    for ann in sorted(glob.glob(pattern)):
        name = os.path.basename(ann)[len("instances_"):-len(".json")]
        subset, year = name[:-4], name[-4:]
        if year.isdigit():
            return os.path.dirname(os.path.dirname(ann)), subset, year
    return None


@pytest.mark.skipif(_shared_coco() is None, reason="no COCO-format dataset in ../shared/data")
def test_shared_coco_dataset_counts():
    directory, subset, year = _shared_coco()
    ds = CocoDataset()
    coco = ds.load_coco(directory, subset, year=year, return_coco=True)
    ds.prepare()
    assert ds.num_images == len(coco.getImgIds())
    assert ds.num_classes == len(coco.getCatIds()) + 1
    assert sum(len(i["annotations"]) for i in ds.image_info) == len(coco.getAnnIds())


# --- person keypoints (person_keypoints_*.json, --task keypoints) ---------------------------

KH, KW = 64, 80


def _person(ann_id, image_id, box, rng, crowd=False):
    """A person annotation: a rectangle polygon and 17 keypoints inside it (integer pixel
    indices as COCO stores them), some occluded (v = 1) and some unlabelled (0, 0, 0)."""
    x, y, w, h = box
    ann = {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": int(crowd),
           "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]], "area": float(w * h),
           "bbox": [x, y, w, h], "num_keypoints": 0, "keypoints": [0] * 51}
    if crowd:
        return ann
    xs = rng.integers(x, x + w, 17)
    ys = rng.integers(y, y + h, 17)
    vs = rng.choice([0, 1, 2], 17, p=[0.2, 0.2, 0.6])
    kps = np.stack([np.where(vs > 0, xs, 0), np.where(vs > 0, ys, 0), vs], axis=1)
    ann.update(keypoints=[int(v) for v in kps.reshape(-1)], num_keypoints=int((vs > 0).sum()))
    return ann


@pytest.fixture
def keypoints_dir(tmp_path):
    import skimage.io

    from mrcnn.presets import COCO_PERSON_KEYPOINT_NAMES

    rng = np.random.default_rng(3)
    (tmp_path / "annotations").mkdir()
    (tmp_path / "val2017").mkdir()
    anns = [_person(1, 1, (5, 6, 30, 40), rng), _person(2, 1, (40, 10, 25, 45), rng),
            # no area and no keypoints: load_mask skips it, so load_keypoints must too (same
            # order); COCOeval ignores persons without keypoints
            dict(_person(3, 2, (10, 10, 20, 20), rng, crowd=True), iscrowd=0,
                 segmentation=[[1, 1, 2, 1]]),
            _person(4, 2, (20, 12, 35, 44), rng),
            _person(5, 2, (0, 0, 16, 16), rng, crowd=True)]
    images = [{"id": i, "file_name": f"{i:012d}.png", "height": KH, "width": KW}
              for i in (1, 2)]
    for info in images:
        skimage.io.imsave(str(tmp_path / "val2017" / info["file_name"]),
                          np.full((KH, KW, 3), 90, np.uint8), check_contrast=False)
    cats = [{"id": 1, "name": "person", "supercategory": "person",
             "keypoints": list(COCO_PERSON_KEYPOINT_NAMES),
             "skeleton": [[16, 14], [14, 12], [6, 7]]}]
    path = tmp_path / "annotations" / "person_keypoints_val2017.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return tmp_path, anns


def _load_keypoints(path):
    ds = CocoDataset()
    coco = ds.load_coco(str(path), "val", year=2017, return_coco=True, task="person_keypoints")
    ds.prepare()
    return ds, coco


def _file_keypoints(ann):
    return np.asarray(ann["keypoints"], np.float32).reshape(17, 3)


def test_person_keypoints_load_in_mask_order_as_continuous_coordinates(keypoints_dir):
    path, anns = keypoints_dir
    ds, _ = _load_keypoints(path)
    assert ds.class_names == ["BG", "person"]
    assert len(ds.keypoint_names) == 17 and ds.keypoint_names[0] == "nose"
    assert ds.keypoint_skeleton == ((15, 13), (13, 11), (5, 6))  # 1-based in the file
    for image_id, expected in ((0, [anns[0], anns[1]]), (1, [anns[3], anns[4]])):
        masks, class_ids = ds.load_mask(image_id)
        kps = ds.load_keypoints(image_id)
        assert kps.shape == (masks.shape[-1], 17, 3) == (2, 17, 3) and kps.dtype == np.float32
        for got, ann in zip(kps, expected):
            want = _file_keypoints(ann)
            labelled = want[:, 2] > 0
            np.testing.assert_array_equal(got[:, 2], want[:, 2])
            np.testing.assert_array_equal(got[labelled, :2], want[labelled, :2] + 0.5)
            np.testing.assert_array_equal(got[~labelled], 0)
    assert class_ids.tolist() == [1, -1] and not ds.load_keypoints(1)[1, :, 2].any()  # crowd


class GroundTruthKeypointModel(GroundTruthModel):
    """detect() also returns the ground truth's keypoints (score column 1), shifted by
    `kp_shift` pixels in x."""

    def __init__(self, dataset, kp_shift=0.0):
        super().__init__(dataset)
        self.kp_shift = kp_shift

    def detect(self, images, verbose=0):
        image_id = self.index["n"] % self.dataset.num_images if self.index else 0
        r = super().detect(images, verbose)[0]
        _, ids = self.dataset.load_mask(image_id)
        kps = self.dataset.load_keypoints(image_id)[ids > 0].copy()
        kps[:, :, 0] += self.kp_shift
        kps[:, :, 2] = 1.0
        r["keypoints"] = kps
        return [r]


def test_keypoint_evaluation_against_the_file_with_pycocotools(keypoints_dir):
    """evaluate_coco(..., "keypoints") writes keypoints as the file stores them: ground truth
    as predictions scores 1.0, and a 2-pixel shift gives exactly what COCOeval gives for the
    file's own keypoints moved by 2 pixels (so the half-pixel convention is undone)."""
    path, anns = keypoints_dir
    ds, coco = _load_keypoints(path)
    stats = evaluate_coco(GroundTruthKeypointModel(ds), ds, coco, "keypoints", verbose=0)
    assert stats["keypoints"]["AP"] == pytest.approx(1.0)
    ours = evaluate_coco(GroundTruthKeypointModel(ds, 2.0), ds, coco, "keypoints", verbose=0)
    results = []
    # GroundTruthModel's scores: np.linspace(0.9, 0.5, instances) per image.
    for ann, score in zip((anns[0], anns[1], anns[3]), (0.9, 0.5, 0.9)):
        kps = _file_keypoints(ann)
        kps[:, 0] += 2.0
        kps[:, 2] = 1.0
        results.append({"image_id": ann["image_id"], "category_id": 1, "score": score,
                        "keypoints": [float(v) for v in kps.reshape(-1)]})
    _assert_equals_cocoeval(ours["keypoints"],
                            path / "annotations" / "person_keypoints_val2017.json", results,
                            "keypoints")


def test_load_coco_json_reads_keypoints_and_rejects_bad_ones(keypoints_dir):
    from mrcnn import utils

    path, anns = keypoints_dir
    ds = utils.Dataset()
    ds.load_coco_json(str(path / "annotations" / "person_keypoints_val2017.json"),
                      str(path / "val2017"))
    ds.prepare()
    np.testing.assert_array_equal(ds.load_keypoints(0), _load_keypoints(path)[0].load_keypoints(0))
    data = json.loads((path / "annotations" / "person_keypoints_val2017.json").read_text())
    data["annotations"][1]["keypoints"] = data["annotations"][1]["keypoints"][:48]
    bad = utils.Dataset()
    bad.load_coco_json(data, str(path / "val2017"))
    bad.prepare()
    with pytest.raises(ValueError, match=r"annotation 2 .*'keypoints' has 48 values"):
        bad.load_keypoints(0)
    no_keypoints = utils.Dataset()
    no_keypoints.add_image("x", 0, "nowhere.png")
    with pytest.raises(NotImplementedError, match="load_keypoints"):
        no_keypoints.load_keypoints(0)


def test_coco_cli_task_keypoints_selects_the_keypoint_config():
    from samples.coco import coco as coco_sample
    from samples.coco import train as coco_train

    args = coco_train.parse_args(["--dataset", "d", "--task", "keypoints", "--weights", "none"])
    overrides = coco_train.config_overrides(args)
    assert overrides["NUM_KEYPOINTS"] == 17 and overrides["NUM_CLASSES"] == 2
    args = coco_sample.parse_args(["evaluate", "--dataset", "d", "--model", "last",
                                   "--task", "keypoints"])
    assert args.task == "keypoints" and args.eval_type is None
    with pytest.raises(ValueError, match="eval_type"):
        evaluate_coco(None, None, None, "keypoint")
