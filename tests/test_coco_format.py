"""Dataset.load_coco_json / mrcnn.coco_format: COCO JSON exports of annotation tools."""

import json
import os

import numpy as np
import pytest

pytest.importorskip("pycocotools")

from pycocotools import mask as mask_utils  # noqa: E402

from mrcnn.dataset import ImageLoadError  # noqa: E402
from mrcnn.ops.masks import compute_overlaps_masks  # noqa: E402
from mrcnn.utils import Dataset  # noqa: E402
from mrcnn.weights import SHARED_DATA_DIR  # noqa: E402

H, W = 30, 40
BALLOON = os.path.join(SHARED_DATA_DIR, "balloon")


def _rect(y1, x1, y2, x2):
    m = np.zeros((H, W), bool)
    m[y1:y2, x1:x2] = True
    return m


def _compressed(mask):
    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [H, W], "counts": r["counts"].decode("ascii")}


def _uncompressed(mask):
    """Column-major run lengths starting with a run of zeros (written here, not by pycocotools)."""
    flat = mask.astype(np.uint8).flatten(order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat[0]:
        runs = [0] + runs
    return {"size": [H, W], "counts": runs}


@pytest.fixture
def export(tmp_path):
    """A tool-style export: non-contiguous category ids in non-sorted order, a polygon, a
    compressed and an uncompressed RLE, a crowd, an image without annotations and an image
    whose file is missing."""
    import skimage.io

    images_dir = tmp_path / "images"
    images_dir.mkdir()
    truth = {
        "rle": _rect(15, 5, 28, 20) & ~_rect(18, 8, 22, 12),  # with a hole
        "uncompressed": _rect(2, 25, 12, 38),
        "crowd": _rect(14, 22, 29, 39),
    }
    images = [{"id": 101, "file_name": "a.png", "height": H, "width": W},
              {"id": 7, "file_name": "sub/b.png", "height": H, "width": W},
              {"id": 55, "file_name": "empty.png", "height": H, "width": W},
              {"id": 9, "file_name": "missing.png", "height": H, "width": W}]
    for info in images[:3]:
        path = images_dir / info["file_name"]
        path.parent.mkdir(exist_ok=True)
        skimage.io.imsave(str(path), np.full((H, W, 3), 60, np.uint8), check_contrast=False)
    anns = [
        {"id": 1, "image_id": 101, "category_id": 17, "iscrowd": 0,
         "segmentation": [[4, 3, 16, 3, 16, 11, 4, 11]], "bbox": [4, 3, 12, 8], "area": 96},
        {"id": 2, "image_id": 101, "category_id": 90, "iscrowd": 0,
         "segmentation": _compressed(truth["rle"]), "bbox": [5, 15, 15, 13], "area": 1},
        {"id": 3, "image_id": 7, "category_id": 5, "iscrowd": 0,
         "segmentation": _uncompressed(truth["uncompressed"]), "bbox": [25, 2, 13, 10],
         "area": 1},
        {"id": 4, "image_id": 7, "category_id": 17, "iscrowd": 1,
         "segmentation": _uncompressed(truth["crowd"]), "bbox": [22, 14, 17, 15], "area": 1},
        {"id": 5, "image_id": 9, "category_id": 5, "iscrowd": 0,
         "segmentation": [[1, 1, 5, 1, 5, 5]], "bbox": [1, 1, 4, 4], "area": 8},
    ]
    cats = [{"id": 17, "name": "cat"}, {"id": 5, "name": "fish"}, {"id": 90, "name": "dog"}]
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path, images_dir, truth


def _load(export, **kwargs):
    path, images_dir, _ = export
    ds = Dataset()
    ds.load_coco_json(str(path), str(images_dir), **kwargs)  # the balloon CLI's exact call
    ds.prepare()
    return ds


def test_categories_map_to_contiguous_ids_with_their_names(export):
    ds = _load(export)
    assert ds.num_classes == 4 and ds.class_names == ["BG", "cat", "fish", "dog"]
    assert [ds.map_source_class_id(f"coco_json.{c}") for c in (17, 5, 90)] == [1, 2, 3]
    assert [ds.get_source_class_id(c, "coco_json") for c in (1, 2, 3)] == [17, 5, 90]
    assert ds.num_images == 4
    assert [i["id"] for i in ds.image_info] == [101, 7, 55, 9]
    assert ds.image_info[1]["path"].endswith(os.path.join("images", "sub", "b.png"))


def test_masks_from_polygons_rle_uncompressed_rle_and_crowds(export):
    truth = export[2]
    ds = _load(export)
    m, ids = ds.load_mask(0)
    assert m.dtype == bool and m.shape == (H, W, 2) and ids.dtype == np.int32
    assert ids.tolist() == [1, 3]
    # The polygon (4,3)-(16,11) covers about the 12 x 8 pixels of its rectangle.
    assert compute_overlaps_masks(m[..., :1], _rect(3, 4, 11, 16)[..., None])[0, 0] > 0.75
    np.testing.assert_array_equal(m[..., 1], truth["rle"])
    m, ids = ds.load_mask(1)
    assert ids.tolist() == [2, -1]  # the crowd gets the negated id of "cat"
    np.testing.assert_array_equal(m[..., 0], truth["uncompressed"])
    np.testing.assert_array_equal(m[..., 1], truth["crowd"])
    m, ids = ds.load_mask(2)  # kept, without instances
    assert m.shape == (H, W, 0) and ids.shape == (0,)
    assert ds.load_image(2).shape == (H, W, 3)


def test_missing_image_file_is_named_when_loaded(export):
    ds = _load(export)
    with pytest.raises(ImageLoadError, match=r"missing\.png.*image_id 3"):
        ds.load_image(3)


def test_class_ids_filter_keeps_images(export):
    ds = _load(export, class_ids=[90])
    assert ds.class_names == ["BG", "dog"] and ds.num_images == 4
    assert ds.load_mask(0)[1].tolist() == [1] and ds.load_mask(1)[1].size == 0


def test_coco_dataset_decodes_with_the_same_code(export, tmp_path):
    from samples.coco.coco import CocoDataset

    path, images_dir, _ = export
    (tmp_path / "annotations").mkdir()
    os.symlink(path, tmp_path / "annotations" / "instances_x2017.json")
    os.symlink(images_dir, tmp_path / "x2017")
    coco = CocoDataset()
    coco.load_coco(str(tmp_path), "x", year=2017)
    coco.prepare()
    ours = _load(export)
    for coco_id in (101, 7):
        a = coco.load_mask(coco.image_from_source_map[f"coco.{coco_id}"])
        b = ours.load_mask(ours.image_from_source_map[f"coco_json.{coco_id}"])
        np.testing.assert_array_equal(a[0], b[0])
        names_a = [coco.class_names[abs(c)] for c in a[1]]
        names_b = [ours.class_names[abs(c)] for c in b[1]]
        assert names_a == names_b and np.array_equal(np.sign(a[1]), np.sign(b[1]))


def test_training_inputs_keep_crowds_and_check_class_ids(export):
    from mrcnn.data_generator import load_image_gt
    from tests.conftest import TinyConfig

    ds = _load(export)
    config = TinyConfig()  # NUM_CLASSES = 4: background + the file's 3 categories
    config.IMAGE_MIN_DIM = config.IMAGE_MAX_DIM = 64
    _, _, class_ids, boxes, _ = load_image_gt(ds, config, 1)
    assert class_ids.tolist() == [2, -1] and boxes.shape == (2, 4)
    config.NUM_CLASSES = 3  # "dog" (internal id 3) no longer fits
    with pytest.raises(ValueError, match=r"class id 3 .*image_id 0.*NUM_CLASSES = 3"):
        load_image_gt(ds, config, 0)


@pytest.mark.parametrize("change,message", [
    (lambda d: d["annotations"][0].update(category_id=4), "category_id 4 not in"),
    (lambda d: d["annotations"][0].update(image_id=12345), "annotation 1 .*image id not in"),
    (lambda d: d["annotations"][0].pop("segmentation"), "annotation 1 .*no 'segmentation'"),
    (lambda d: d.pop("categories"), "no 'categories' list"),
])
def test_bad_files_fail_naming_the_problem(export, tmp_path, change, message):
    path, images_dir, _ = export
    data = json.loads(path.read_text())
    change(data)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message):
        Dataset().load_coco_json(str(bad), str(images_dir))
    with pytest.raises(FileNotFoundError, match="nope.json"):
        Dataset().load_coco_json(str(tmp_path / "nope.json"), str(images_dir))


def test_subclass_load_mask_override_still_wins(export):
    class Mine(Dataset):
        def load_mask(self, image_id):
            return np.ones((H, W, 1), bool), np.array([1], np.int32)

    path, images_dir, _ = export
    ds = Mine()
    ds.load_coco_json(str(path), str(images_dir))
    ds.prepare()
    assert ds.load_mask(0)[1].tolist() == [1]


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isfile(os.path.join(BALLOON, "coco", "train.json")),
                    reason=f"no balloon COCO copy at {os.path.join(BALLOON, 'coco', 'train.json')}")
def test_balloon_coco_json_matches_the_via_annotations():
    """The COCO copy of matterport's balloon train set against balloon.py's VIA loader. The
    COCO polygons carry +0.5 offsets (see ../shared/data/balloon/README.md), so masks are
    compared by IoU, not pixel for pixel."""
    from samples.balloon.balloon import BalloonDataset

    coco = Dataset()
    assert coco.load_coco_json(os.path.join(BALLOON, "coco", "train.json"),
                               os.path.join(BALLOON, "train")) == 61
    coco.prepare()
    via = BalloonDataset()
    via.load_balloon(BALLOON, "train")
    via.prepare()
    assert coco.class_names == ["BG", "balloon"]
    by_name = {os.path.basename(i["path"]): k for k, i in enumerate(via.image_info)}
    instances, worst = 0, 1.0
    for image_id in coco.image_ids:
        name = os.path.basename(coco.image_info[image_id]["path"])
        m, ids = coco.load_mask(image_id)
        ref, ref_ids = via.load_mask(by_name[name])
        assert m.shape == ref.shape and ids.tolist() == ref_ids.tolist(), name
        iou = np.diag(compute_overlaps_masks(m, ref))
        worst = min(worst, float(iou.min()))
        instances += len(ids)
    assert instances == 255
    assert worst > 0.9, worst


def test_roboflow_placeholder_category_and_tool_file_names(export, tmp_path):
    """Roboflow writes an unannotated id-0 category naming the others' supercategory; Label
    Studio writes upload paths and labelme on Windows backslashes in file_name."""
    path, images_dir, truth = export
    data = json.loads(path.read_text())
    data["categories"] = [{"id": 0, "name": "animals", "supercategory": "none"}] + [
        dict(c, supercategory="animals") for c in data["categories"]]
    data["images"][0]["file_name"] = "/data/upload/3/a.png"
    data["images"][1]["file_name"] = "sub\\b.png"
    tool = tmp_path / "tool.json"
    tool.write_text(json.dumps(data))
    ds = Dataset()
    ds.load_coco_json(str(tool), str(images_dir))
    ds.prepare()
    assert ds.class_names == ["BG", "cat", "fish", "dog"]  # no "animals" class
    assert ds.image_info[0]["path"] == os.path.join(str(images_dir), "a.png")
    assert ds.image_info[1]["path"] == os.path.join(str(images_dir), "sub/b.png")
    assert ds.load_image(0).shape == (H, W, 3) and ds.load_image(1).shape == (H, W, 3)
    np.testing.assert_array_equal(ds.load_mask(1)[0][..., 0], truth["uncompressed"])
    # An annotated category stays a class even when others name it as their supercategory.
    data["annotations"][0]["category_id"] = 0
    tool.write_text(json.dumps(data))
    ds = Dataset()
    ds.load_coco_json(str(tool), str(images_dir))
    ds.prepare()
    assert ds.class_names == ["BG", "animals", "cat", "fish", "dog"]
