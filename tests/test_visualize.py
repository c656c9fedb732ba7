import numpy as np


def test_display_instances_draws_masks_in_their_colour(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import skimage.io

    from mrcnn import visualize

    image = np.full((80, 120, 3), 40, np.uint8)
    masks = np.zeros((80, 120, 2), bool)
    masks[10:40, 10:50, 0] = True
    masks[45:75, 60:110, 1] = True
    boxes = np.array([[10, 10, 40, 50], [45, 60, 75, 110]])
    colors = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # an array is accepted
    path = tmp_path / "det.png"
    fig = visualize.display_instances(image, boxes, masks, np.array([1, 2]), ["BG", "a", "b"],
                                      scores=np.array([0.0, 0.5]), colors=colors,
                                      figsize=(6, 4), save_path=str(path))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "a 0.000" in texts and "b 0.500" in texts  # a score of 0 is shown
    out = skimage.io.imread(str(path))[..., :3].astype(int)
    assert out.shape[0] > 50 and out.std() > 0
    reddish = (out[..., 0] > out[..., 2] + 60).sum()
    bluish = (out[..., 2] > out[..., 0] + 60).sum()
    assert reddish > 500 and bluish > 500


def test_apply_mask_blends_only_inside():
    from mrcnn.visualize import apply_mask

    image = np.zeros((4, 4, 3), np.float64)
    mask = np.zeros((4, 4), bool)
    mask[0, 0] = True
    out = apply_mask(image, mask, (1.0, 0.0, 0.0), alpha=0.5)
    assert out[0, 0].tolist() == [127.5, 0, 0] and not out[1:].any()
