import numpy as np
import pytest

from mrcnn.dataset import ImageLoadError
from mrcnn.utils import Dataset


def _dataset():
    ds = Dataset()
    ds.add_class("coco", 1, "person")
    ds.add_class("coco", 18, "dog, puppy")
    ds.add_class("coco", 1, "person")  # duplicate, ignored
    ds.add_class("mine", 1, "balloon")
    return ds


def test_prepare_builds_maps():
    ds = _dataset()
    ds.add_image("coco", 42, "/x/a.jpg")
    ds.add_image("mine", "b.jpg", "/x/b.jpg")
    ds.prepare()
    assert ds.num_classes == 4 and ds.class_names == ["BG", "person", "dog", "balloon"]
    assert ds.map_source_class_id("coco.18") == 2
    assert ds.get_source_class_id(2, "coco") == 18
    assert ds.image_from_source_map["mine.b.jpg"] == 1
    assert ds.source_class_ids == {"": [0], "coco": [0, 1, 2], "mine": [0, 3]}
    assert list(ds.image_ids) == [0, 1]
    with pytest.raises(ValueError):
        ds.add_class("a.b", 1, "x")


def _write(path, array):
    import skimage.io

    skimage.io.imsave(str(path), array, check_contrast=False)
    return str(path)


@pytest.mark.parametrize("kind", ["gray", "rgba", "uint16", "rgb"])
def test_load_image_converts_to_rgb_uint8(tmp_path, kind):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    if kind == "gray":
        arr, expected = rgb[..., 0], np.repeat(rgb[..., :1], 3, -1)
    elif kind == "rgba":
        arr, expected = np.concatenate([rgb, np.full((20, 30, 1), 7, np.uint8)], -1), rgb
    elif kind == "uint16":
        arr = rgb[..., 0].astype(np.uint16) * 257  # 16-bit grayscale PNG
        expected = np.repeat(rgb[..., :1], 3, -1)
    else:
        arr, expected = rgb, rgb
    ds = Dataset()
    ds.add_image("s", 0, _write(tmp_path / "im.png", arr))
    ds.prepare()
    image = ds.load_image(0)
    assert image.shape == (20, 30, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, expected)


def test_missing_and_corrupt_images_name_the_file(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    ds = Dataset()
    ds.add_image("s", "missing", str(tmp_path / "nope.png"))
    ds.add_image("s", "bad", str(bad))
    ds.prepare()
    with pytest.raises(ImageLoadError, match="nope.png.*image_id 0"):
        ds.load_image(0)
    with pytest.raises(ImageLoadError, match="bad.jpg.*image_id 1"):
        ds.load_image(1)
    with pytest.raises(IndexError, match="out of range"):
        ds.load_image(5)


def test_default_load_mask_is_empty():
    masks, ids = Dataset().load_mask(0)
    assert masks.shape == (0, 0, 0) and ids.shape == (0,)
