"""mrcnn.copy_paste: hand-computed pastes, and composites checked against their donors."""

import numpy as np
import pytest

from mrcnn.copy_paste import CopyPasteDataset, paste_instance
from mrcnn.dataset import Dataset
from mrcnn.ops.masks import extract_bboxes


def test_paste_occludes_earlier_masks_and_clips_at_the_border():
    image = np.zeros((6, 6, 3), np.uint8)
    masks = np.zeros((6, 6, 2), bool)
    masks[0:3, 0:3, 0] = True          # 9 pixels; the paste covers 4 of them
    masks[4:6, 4:6, 1] = True          # 4 pixels; the paste covers 1 of them
    patch = np.full((3, 3, 3), 200, np.uint8)
    patch_mask = np.ones((3, 3), bool)
    patch_mask[0, 0] = False           # an L-shaped instance...
    # ...placed with its top-left at (1, 1): it covers rows/cols 1..3 except (1, 1).
    out, out_masks, out_ids = paste_instance(image, masks, [1, 2], patch, patch_mask, 3, 1, 1)
    assert out_masks.shape == (6, 6, 3) and out_ids.tolist() == [1, 2, 3]
    expected_new = np.zeros((6, 6), bool)
    expected_new[1:4, 1:4] = True
    expected_new[1, 1] = False
    np.testing.assert_array_equal(out_masks[:, :, 2], expected_new)
    assert out_masks[:, :, 0].sum() == 9 - 3   # (1,2), (2,1), (2,2) went to the pasted one
    assert out_masks[:, :, 1].sum() == 4       # (4,4)..(5,5): not under the paste
    assert (out[expected_new] == 200).all() and (out[~expected_new] == 0).all()
    assert image.max() == 0                    # the input is not modified

    # Over the bottom-right border: only the visible 2x2 part is pasted.
    out, out_masks, _ = paste_instance(image, masks, [1, 2], patch, np.ones((3, 3), bool),
                                       3, 4, 4)
    assert out_masks[:, :, -1].sum() == 4 and out_masks[4:, 4:, -1].all()
    assert out_masks.shape[-1] == 2            # instance 2 (4 px) was covered whole: dropped

    # Entirely outside: nothing changes.
    out, out_masks, out_ids = paste_instance(image, masks, [1, 2], patch, patch_mask, 3, 9, -5)
    assert out_masks.shape[-1] == 2 and out.max() == 0 and out_ids.tolist() == [1, 2]


def test_min_pixels_drops_mostly_hidden_instances():
    masks = np.zeros((5, 5, 1), bool)
    masks[0:2, 0:3, 0] = True                  # 6 pixels, 4 get covered
    _, out_masks, out_ids = paste_instance(np.zeros((5, 5, 3), np.uint8), masks, [1],
                                           np.zeros((2, 2, 3), np.uint8), np.ones((2, 2), bool),
                                           1, 0, 0, min_pixels=3)
    assert out_masks.shape[-1] == 1 and out_ids.tolist() == [1]


class Squares(Dataset):
    """Images of one solid square each, in a colour that codes its image id."""

    def __init__(self, count, size=64, empty=()):
        super().__init__()
        self.add_class("sq", 1, "square")
        self.size, self.empty = size, set(empty)
        for i in range(count):
            self.add_image("sq", i, None)
        self.prepare()

    def load_image(self, image_id):
        image = np.full((self.size, self.size, 3), 10, np.uint8)
        if image_id not in self.empty:
            image[8:24, 16:40] = (50 + 10 * image_id, 100, 150)
        return image

    def load_mask(self, image_id):
        if image_id in self.empty:
            return np.zeros((self.size, self.size, 0), bool), np.zeros([0], np.int32)
        mask = np.zeros((self.size, self.size, 1), bool)
        mask[8:24, 16:40, 0] = True
        return mask, np.array([1], np.int32)


def test_composites_follow_the_base_and_hold_unscaled_donor_pixels():
    base = Squares(5, empty=[3])
    ds = CopyPasteDataset(base, count=20, seed=7, max_pastes=3, scale_range=(1.0, 1.0))
    assert len(ds.image_ids) == 25 and ds.num_classes == base.num_classes
    for i in range(5):   # the base images come first, unchanged
        np.testing.assert_array_equal(ds.load_image(i), base.load_image(i))
        assert ds.load_mask(i)[0].shape == base.load_mask(i)[0].shape
    assert ds.donors().tolist() == [0, 1, 2, 4]
    colours = {(50 + 10 * i, 100, 150) for i in (0, 1, 2, 4)}
    for i in range(5, 25):
        image = ds.load_image(i)
        masks, ids = ds.load_mask(i)
        assert masks.shape == (64, 64, len(ids)) and (ids == 1).all()
        assert masks.sum(axis=(0, 1)).min() >= 9
        assert not (masks.sum(axis=2) > 1).any()           # pasted instances do not overlap
        last = masks[:, :, -1]                               # the last paste: one donor square
        assert 1 <= last.sum() <= 16 * 24
        assert len({tuple(p) for p in image[last]}) == 1
        assert tuple(image[last][0]) in colours
        # Reloading gives the same composite (also from a fresh wrapper: no hidden state).
        again = CopyPasteDataset(base, count=20, seed=7, max_pastes=3, scale_range=(1.0, 1.0))
        np.testing.assert_array_equal(again.load_image(i), image)
        np.testing.assert_array_equal(again.load_mask(i)[0], masks)
        assert "copy-paste composite" in ds.image_reference(i)
    other = CopyPasteDataset(base, count=20, seed=8, scale_range=(1.0, 1.0))
    assert any(not np.array_equal(other.load_image(i), ds.load_image(i)) for i in range(5, 25))


def test_scale_range_resizes_pasted_instances():
    base = Squares(3)
    ds = CopyPasteDataset(base, count=10, seed=0, max_pastes=1, scale_range=(0.5, 0.5),
                          min_pixels=1)
    for i in range(3, 13):
        masks, _ = ds.load_mask(i)
        ys, xs = np.nonzero(masks[:, :, -1])
        # A 16x24 square at half size is 8x12, fewer where it runs over the border.
        assert ys.max() - ys.min() + 1 <= 8 and xs.max() - xs.min() + 1 <= 12
        assert masks[:, :, -1].sum() <= 96


def _touches(box, other):
    """Boxes (y1, x1, y2, x2), y2/x2 exclusive, overlap or share an edge."""
    return box[0] <= other[2] and other[0] <= box[2] and box[1] <= other[3] and \
        other[1] <= box[3]


@pytest.mark.parametrize("near_prob,all_touch", [(1.0, True), (0.0, False)])
def test_near_prob_pastes_beside_an_instance(near_prob, all_touch):
    """Every paste beside the background's square when near_prob is 1; without it, some land
    away from it (so the check can fail)."""
    base = Squares(3)
    ds = CopyPasteDataset(base, count=30, seed=1, max_pastes=1, scale_range=(1.0, 1.0),
                          min_pixels=1, near_prob=near_prob)
    square = (8, 16, 24, 40)
    touching = []
    for i in range(3, 33):
        masks, _ = ds.load_mask(i)
        pasted = extract_bboxes(masks[:, :, -1:])[0]
        touching.append(_touches(pasted, square))
    assert all(touching) if all_touch else not all(touching)


def test_bad_arguments_are_refused():
    base = Squares(2)
    with pytest.raises(ValueError, match="count"):
        CopyPasteDataset(base, count=-1)
    with pytest.raises(ValueError, match="scale_range"):
        CopyPasteDataset(base, count=1, scale_range=(0.0, 1.0))
    with pytest.raises(ValueError, match="near_prob"):
        CopyPasteDataset(base, count=1, near_prob=1.5)
    with pytest.raises(ValueError, match="max_pastes"):
        CopyPasteDataset(base, count=1, max_pastes=0)
    with pytest.raises(ValueError, match="at least one base image with an instance"):
        CopyPasteDataset(Squares(2, empty=[0, 1]), count=1).load_image(2)
