"""The shapes sample end to end: a seeded, shortened run of samples/shapes/train.py must reach a
real quality threshold on held-out images, so a regression anywhere in the model, targets,
losses or data path turns CI red."""


import numpy as np
import pytest

from samples.shapes.shapes import ShapesDataset
from tests.samples.runs import run_sample


def test_dataset_is_seeded_and_consistent():
    a, b = ShapesDataset(), ShapesDataset()
    a.load_shapes(5, 128, 128, seed=3)
    b.load_shapes(5, 128, 128, seed=3)
    a.prepare()
    b.prepare()
    for i in a.image_ids:
        np.testing.assert_array_equal(a.load_image(i), b.load_image(i))
        mask, ids = a.load_mask(i)
        assert mask.shape[:2] == (128, 128) and mask.shape[-1] == len(ids) >= 1
        assert set(ids.tolist()) <= {1, 2, 3}
        # Occlusion: no pixel belongs to two instances.
        assert mask.sum(-1).max() <= 1


def test_shapes_on_photo_backgrounds():
    """--backgrounds: the same shapes and masks as with flat colours (same seed), drawn on a
    crop of one of the photos: outside the shapes each image is that crop, pixel for pixel."""
    rng = np.random.default_rng(0)
    photos = [rng.integers(0, 256, (150, 200, 3), dtype=np.uint8),
              rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)]
    flat, photo = ShapesDataset(), ShapesDataset()
    flat.load_shapes(6, 128, 128, seed=4)
    photo.load_shapes(6, 128, 128, seed=4, backgrounds=photos)
    flat.prepare()
    photo.prepare()
    for i in photo.image_ids:
        masks, ids = photo.load_mask(i)
        flat_masks, flat_ids = flat.load_mask(i)
        np.testing.assert_array_equal(masks, flat_masks)
        np.testing.assert_array_equal(ids, flat_ids)
        k, y, x = photo.image_info[i]["background"]
        crop = photos[k][y:y + 128, x:x + 128]
        image, shapes = photo.load_image(i), masks.any(-1)
        np.testing.assert_array_equal(image[~shapes], crop[~shapes])
        np.testing.assert_array_equal(image[shapes], flat.load_image(i)[shapes])
    with pytest.raises(ValueError, match=r"at least 128x128; these are not: \[1\]"):
        ShapesDataset().load_shapes(2, 128, 128, seed=0, backgrounds=[photos[0], photos[0][:100]])


def test_read_backgrounds_names_a_bad_file(tmp_path):
    import skimage.io

    from samples.shapes.train import read_backgrounds

    with pytest.raises(ValueError, match="no image files"):
        read_backgrounds(str(tmp_path))
    skimage.io.imsave(tmp_path / "a.png", np.zeros((130, 140), np.uint8), check_contrast=False)
    photos = read_backgrounds(str(tmp_path))
    assert len(photos) == 1 and photos[0].shape == (130, 140, 3)   # gray -> RGB
    skimage.io.imsave(tmp_path / "b.png", np.zeros((60, 200, 3), np.uint8),
                      check_contrast=False)
    with pytest.raises(ValueError, match=r"b\.png is 200x60, smaller than 128x128"):
        read_backgrounds(str(tmp_path))
    (tmp_path / "b.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"cannot read .*b\.png"):
        read_backgrounds(str(tmp_path))


@pytest.mark.parametrize("name, conv1, widths, blocks", [
    ("mini", 32, (64, 128, 256, 512), (1, 1, 1, 1)),
    ("small", 64, (128, 256, 512, 1024), (1, 2, 2, 1)),
])
def test_small_trunks_have_resnet_strides_names_and_widths(name, conv1, widths, blocks):
    """The samples' trunks: C1..C5 at strides 4, 4, 8, 16, 32 with the stated widths and
    block counts, under matterport's layer names (a checkpoint loads by these)."""
    import keras

    from samples.shapes.train import BACKBONES

    image = keras.Input((128, 128, 3))
    outputs = BACKBONES[name]["BACKBONE"](image, stage5=True, train_bn=True)
    shapes = [tuple(o.shape[1:]) for o in outputs]
    assert shapes == [(32, 32, conv1), (32, 32, widths[0]), (16, 16, widths[1]),
                      (8, 8, widths[2]), (4, 4, widths[3])]
    model = keras.Model(image, outputs)
    names = {layer.name for layer in model.layers}
    for stage, count in zip((2, 3, 4, 5), blocks):
        present = [b for b in "abc" if f"res{stage}{b}_branch2a" in names]
        assert present == list("abc"[:count]), (stage, present)
    assert model.get_layer("res5a_branch2c").kernel.shape[-1] == widths[3]


# 2,000 steps of the sample's model (about 3.5 minutes on the 2-core CI machine). The main
# job's run (36 epochs, README) was at validation mAP@0.5 0.40 after 1,000 steps and 0.72
# after 2,000 (measured, still at the full learning rate), so 0.5 after 2,000 steps ending at
# LR/10 leaves margin for seeds and machines while any real regression falls far below it.
QUICK_ARGS = ["--backbone", "mini", "--epochs", "10", "--lr-drop-epochs", "2",
              "--steps-per-epoch", "200", "--train-images", "2000", "--val-images", "30",
              "--seed", "0"]
QUICK_STEPS = 2000
QUICK_THRESHOLD = 0.5


@pytest.mark.slow
def test_short_seeded_training_reaches_map_threshold(tmp_path, capsys):
    from samples.shapes import train

    saved = run_sample(train, QUICK_ARGS, tmp_path, capsys, QUICK_STEPS)
    assert 0 <= saved["coco_mask_AP"] <= 1
    print(f"quick shapes run: mask mAP@0.5 = {saved['mask_mAP50']:.3f}")
    assert saved["mask_mAP50"] >= QUICK_THRESHOLD
