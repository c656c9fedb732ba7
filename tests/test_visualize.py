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


def _png_ok(path):
    import skimage.io

    out = skimage.io.imread(str(path))
    assert out.ndim == 3 and out.shape[0] > 50 and out[..., :3].std() > 0
    return out


def test_every_drawing_function_renders_a_png(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from mrcnn import evaluation, visualize

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
    masks = np.zeros((60, 80, 2), bool)
    masks[5:25, 5:30, 0] = True
    masks[30:55, 40:75, 1] = True
    boxes = np.array([[5, 5, 25, 30], [30, 40, 55, 75]])
    ids = np.array([1, 2])
    names = ["BG", "a", "b"]
    scores = np.array([0.9, 0.6])
    calls = {
        "images": lambda p: visualize.display_images([image, image], titles=["x", "y"],
                                                     save_path=p),
        "top_masks": lambda p: visualize.display_top_masks(image, masks, ids, names,
                                                           save_path=p),
        "differences": lambda p: visualize.display_differences(
            image, boxes, ids, masks, boxes, ids, scores, masks, names, save_path=p),
        "rois": lambda p: visualize.draw_rois(image, boxes.astype(float),
                                              boxes.astype(float) + 1,
                                              np.ones((2, 28, 28)), ids, names, save_path=p),
        "pr": lambda p: visualize.plot_precision_recall(
            *evaluation.compute_ap(boxes, ids, masks, boxes, ids, scores, masks)[:3],
            save_path=p),
        "overlaps": lambda p: visualize.plot_overlaps(
            ids, ids, scores, evaluation.compute_overlaps_masks(masks, masks), names,
            save_path=p),
        "boxes": lambda p: visualize.draw_boxes(image, boxes=boxes, refined_boxes=boxes + 2,
                                                masks=masks, captions=["p", "q"],
                                                visibilities=[2, 1], save_path=p),
    }
    for name, call in calls.items():
        path = tmp_path / f"{name}.png"
        fig = call(str(path))
        assert fig is not None, name
        _png_ok(path)
    drawn = visualize.draw_box(np.zeros((10, 10, 3), np.uint8), (2, 2, 8, 8), (255, 0, 0))
    assert drawn[2, 2:8, 0].all() and drawn[7, 2:8, 0].all() and not drawn[4, 4].any()
    html = visualize.display_table([["a", 1], ["b", 2]])
    assert "<td>b</td>" in html


def test_display_weight_stats_flags_dead_weights(tmp_path, tiny_config):
    from mrcnn import model as modellib
    from mrcnn import visualize

    model = modellib.MaskRCNN("inference", tiny_config, str(tmp_path))
    rows = visualize.display_weight_stats(model)
    assert rows[0][0] == "WEIGHT NAME" and len(rows) > 300
    assert any("dead?" in r[0] and "gamma" in r[0] for r in rows[1:])  # BN gamma all ones


def test_display_keypoints_draws_visible_points_and_skeleton(tmp_path):
    from mrcnn import visualize

    image = np.zeros((60, 80, 3), np.uint8)
    boxes = np.array([[5, 5, 50, 40], [10, 45, 55, 75]])
    kps = np.array([[[10, 10, 2], [20, 20, 1], [30, 30, 0]],
                    [[50, 15, 2], [60, 25, 2], [70, 35, 2]]], np.float64)
    fig = visualize.display_keypoints(image, boxes, kps, [1, 1], ["BG", "figure"],
                                      skeleton=[(0, 1), (1, 2)],
                                      save_path=str(tmp_path / "kp.png"))
    ax = fig.axes[0]
    # 5 labelled points (v = 0 is not drawn); lines: (0,1) for the first, both for the second.
    assert len(ax.collections) == 5
    assert len(ax.lines) == 3
    assert (tmp_path / "kp.png").stat().st_size > 0
    # Predictions (scores, not visibilities) below min_score are left out.
    pred = kps.copy()
    pred[..., 2] = [[0.9, 0.2, 0.8], [0.05, 0.7, 0.6]]
    fig = visualize.display_keypoints(image, boxes, pred, [1, 1], ["BG", "figure"],
                                      skeleton=[(0, 1), (1, 2)], min_score=0.5)
    assert len(fig.axes[0].collections) == 4 and len(fig.axes[0].lines) == 1
