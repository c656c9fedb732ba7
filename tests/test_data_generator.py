import numpy as np
import pytest

from mrcnn.data_generator import DataGenerator, data_generator, load_image_gt
from mrcnn.utils import Dataset
from tests.conftest import TinyConfig


class BoxDataset(Dataset):
    """64x96 images, each with one filled rectangle (class 1), or none, or a broken mask."""

    def load(self, specs):
        self.add_class("box", 1, "box")
        for i, spec in enumerate(specs):
            self.add_image("box", i, None, spec=spec)

    def load_image(self, image_id):
        image = np.zeros((64, 96, 3), np.uint8)
        image[:, :48] = 200  # left half bright, so a flip is visible
        return image

    def load_mask(self, image_id):
        spec = self.image_info[image_id]["spec"]
        if spec == "empty":
            return np.zeros((64, 96, 0), bool), np.zeros(0, np.int32)
        if spec == "wrong_size":
            return np.ones((10, 10, 1), bool), np.array([1], np.int32)
        m = np.zeros((64, 96, 1), bool)
        y1, x1, y2, x2 = spec
        m[y1:y2, x1:x2, 0] = True
        return m, np.array([1], np.int32)


class Cfg(TinyConfig):
    NUM_CLASSES = 2
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 128
    USE_MINI_MASK = False


def _dataset(*specs):
    ds = BoxDataset()
    ds.load(list(specs))
    ds.prepare()
    return ds


def test_load_image_gt_resizes_image_boxes_and_masks():
    ds = _dataset((10, 20, 30, 40))
    image, meta, class_ids, bbox, mask = load_image_gt(ds, Cfg(), 0)
    assert image.shape == (128, 128, 3) and mask.shape == (128, 128, 1)
    # No scaling (the short side is IMAGE_MIN_DIM already); padded by 32 rows and 16 columns.
    assert class_ids.tolist() == [1]
    assert bbox[0].tolist() == [42, 36, 62, 56]
    assert meta[1:4].tolist() == [64, 96, 3] and meta[7:11].tolist() == [32, 16, 96, 112]
    assert meta[12:].tolist() == [1, 1]


def test_augmentation_moves_masks_with_the_image():
    pytest.importorskip("imgaug")
    import imgaug.augmenters as iaa

    ds = _dataset((10, 20, 30, 40))
    image, _, _, bbox, mask = load_image_gt(ds, Cfg(), 0, augmentation=iaa.Fliplr(1.0))
    plain, _, _, pbox, _ = load_image_gt(ds, Cfg(), 0)
    np.testing.assert_array_equal(image, plain[:, ::-1])
    assert bbox[0].tolist() == [pbox[0][0], 128 - pbox[0][3], pbox[0][2], 128 - pbox[0][1]]
    # A colour-only augmenter must not touch masks.
    _, _, _, _, m2 = load_image_gt(ds, Cfg(), 0, augmentation=iaa.Multiply(0.5))
    np.testing.assert_array_equal(m2, load_image_gt(ds, Cfg(), 0)[4])
    del mask


def test_instances_cropped_away_are_dropped_and_empty_images_allowed():
    pytest.importorskip("imgaug")
    import imgaug.augmenters as iaa

    ds = _dataset((0, 0, 5, 5), "empty")
    aug = iaa.Affine(translate_px={"x": 120})
    _, _, class_ids, bbox, mask = load_image_gt(ds, Cfg(), 0, augmentation=aug)
    assert class_ids.size == 0 and bbox.shape == (0, 4) and mask.shape[-1] == 0
    _, _, class_ids, _, _ = load_image_gt(ds, Cfg(), 1)
    assert class_ids.size == 0


def test_bad_masks_name_the_image():
    ds = _dataset("wrong_size")
    with pytest.raises(ValueError, match="image_id 0.*source 'box'"):
        load_image_gt(ds, Cfg(), 0)


def test_batches_are_deterministic_and_cover_the_data():
    ds = _dataset(*[(i, i, i + 10, i + 12) for i in range(10)])
    cfg = Cfg()
    gen = DataGenerator(ds, cfg, shuffle=True, batch_size=2, steps=5, seed=3)
    again = DataGenerator(ds, cfg, shuffle=True, batch_size=2, steps=5, seed=3)
    seen = []
    for idx in range(5):
        (b,) = gen[idx]
        np.testing.assert_array_equal(b["input_gt_boxes"], again[idx][0]["input_gt_boxes"])
        seen += b["input_image_meta"][:, 0].astype(int).tolist()
    assert sorted(seen) == list(range(10))  # one pass = every image exactly once
    (b,) = gen[0]
    assert b["input_image"].shape == (2, 128, 128, 3) and b["input_image"].dtype == np.float32
    assert b["input_rpn_match"].shape[2] == 1
    assert b["input_gt_masks"].shape == (2, 128, 128, cfg.MAX_GT_INSTANCES)
    assert set(np.unique(b["input_rpn_match"])) <= {-1, 0, 1}
    gen.on_epoch_end()
    assert [int(x) for x in gen[0][0]["input_image_meta"][:, 0]] != [] and gen.epoch == 1


def test_empty_images_are_kept_or_skipped_by_config():
    ds = _dataset("empty", (5, 5, 20, 20))
    cfg = Cfg()
    batch = DataGenerator(ds, cfg, shuffle=False, batch_size=2, steps=1)[0][0]
    assert batch["input_gt_class_ids"][0].sum() == 0 and (batch["input_rpn_match"][0] == -1).any()
    cfg.SKIP_EMPTY_IMAGES = True
    batch = DataGenerator(ds, cfg, shuffle=False, batch_size=2, steps=1)[0][0]
    assert (batch["input_gt_class_ids"][:, 0] == 1).all()


def test_class_count_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="2 classes.*NUM_CLASSES is 4"):
        DataGenerator(_dataset((5, 5, 20, 20)), TinyConfig())


def test_matterport_generator_yields_inputs_list():
    ds = _dataset((5, 5, 20, 20))
    inputs, outputs = next(data_generator(ds, Cfg(), batch_size=1))
    assert len(inputs) == 7 and outputs == []


def test_loader_is_picklable_and_workers_zero_is_accepted():
    import pickle

    from samples.shapes.shapes import ShapesDataset

    ds = ShapesDataset()
    ds.load_shapes(6, 128, 128, seed=0)
    ds.prepare()
    gen = DataGenerator(ds, TinyConfig(), batch_size=2, steps=3, seed=5, workers=0)
    clone = pickle.loads(pickle.dumps(gen))  # what a worker process receives
    for idx in range(3):
        a, b = gen[idx][0], clone[idx][0]
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


@pytest.mark.slow
def test_multiprocess_loading_gives_the_same_batches():
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    from samples.shapes.shapes import ShapesDataset

    ds = ShapesDataset()
    ds.load_shapes(8, 128, 128, seed=0)
    ds.prepare()
    ref = DataGenerator(ds, TinyConfig(), batch_size=2, steps=4, seed=9)
    gen = DataGenerator(ds, TinyConfig(), batch_size=2, steps=4, seed=9, workers=2,
                        use_multiprocessing=True)
    adapter = PyDatasetAdapter(gen, shuffle=False)
    batches = list(adapter.get_numpy_iterator())
    assert len(batches) == 4
    for idx, (batch,) in enumerate(batches):
        np.testing.assert_array_equal(batch["input_gt_boxes"], ref[idx][0]["input_gt_boxes"])
    adapter.on_epoch_end()


def test_no_augmentation_sources_are_left_alone():
    pytest.importorskip("imgaug")
    import imgaug.augmenters as iaa

    ds = _dataset((10, 20, 30, 40))
    flipped = DataGenerator(ds, Cfg(), batch_size=1, steps=1, augmentation=iaa.Fliplr(1.0))[0]
    kept = DataGenerator(ds, Cfg(), batch_size=1, steps=1, augmentation=iaa.Fliplr(1.0),
                         no_augmentation_sources=["box"])[0]
    plain = DataGenerator(ds, Cfg(), batch_size=1, steps=1)[0]
    np.testing.assert_array_equal(kept[0]["input_gt_boxes"], plain[0]["input_gt_boxes"])
    assert not np.array_equal(flipped[0]["input_gt_boxes"], plain[0]["input_gt_boxes"])


class _FailingBoxDataset(BoxDataset):
    def load_image(self, image_id):
        if image_id == 2:
            raise OSError("cannot decode the file")
        return super().load_image(image_id)


@pytest.mark.parametrize("workers, processes", [(1, False), (2, False), (2, True)])
def test_iter_batches_yields_the_global_batches_in_order(workers, processes):
    ds = _dataset(*[(10 + i, 20, 30 + i, 40) for i in range(7)])
    ref = DataGenerator(ds, Cfg(), batch_size=2, steps=3, seed=4)
    gen = DataGenerator(ds, Cfg(), batch_size=2, steps=3, seed=4, workers=workers,
                        use_multiprocessing=processes)
    stream = gen.iter_batches(5)
    # Past any epoch boundary: batch k is the same function of k as batch(k).
    for number in range(5, 12):
        got, want = next(stream), ref.batch(number)
        assert sorted(got) == sorted(want)
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=f"{key} of {number}")
    stream.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_iter_batches_names_the_image_that_failed(workers):
    ds = _FailingBoxDataset()
    ds.load([(10, 20, 30, 40)] * 4)
    ds.prepare()
    gen = DataGenerator(ds, Cfg(), batch_size=1, steps=4, seed=0, shuffle=False,
                        workers=workers)
    stream = gen.iter_batches(0)
    next(stream), next(stream)  # images 0 and 1
    with pytest.raises(OSError, match="cannot decode the file.*image_id 2 .*source 'box'"):
        next(stream)
