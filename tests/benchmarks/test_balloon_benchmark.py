"""benchmarks/balloon.py: the shapes stage's photo backgrounds hold no balloon, and its model
has the balloon model's layers."""

import os

import numpy as np
import pytest

from tests.samples.test_balloon import _real_dir, needs_real


@needs_real
@pytest.mark.slow
def test_background_crops_hold_no_balloon(tmp_path):
    import skimage.io

    from benchmarks.balloon import write_background_crops
    from samples.balloon.balloon import BalloonDataset

    crops = write_background_crops(_real_dir(), str(tmp_path), per_photo=2, tries=100)
    files = sorted(os.listdir(tmp_path))
    assert len(files) == len(crops) > 40
    assert all(skimage.io.imread(tmp_path / f).shape == (128, 128, 3) for f in files)
    train = BalloonDataset()
    train.load_balloon(_real_dir(), "train")
    train.prepare()
    for image_id, y, x, scale in crops:
        # The crop's area in the full-size photo, less a pixel of rounding at each edge,
        # against the full-size masks: no balloon pixel.
        masks, _ = train.load_mask(image_id)
        y1, x1 = int(np.ceil(y / scale)) + 1, int(np.ceil(x / scale)) + 1
        y2, x2 = int((y + 128) / scale) - 1, int((x + 128) / scale) - 1
        assert y2 > y1 and x2 > x1
        assert not masks[y1:y2, x1:x2].any(), (image_id, y, x)


def test_shapes_stage_has_the_balloon_models_layers(tmp_path, monkeypatch):
    """The shapes stage gets the balloon model's widths and switches (FPN BatchNorm, the
    four-conv box head) and the --architecture overrides after them: every layer of the shapes
    model but the class-specific ones has a balloon layer of its name and weight shapes."""
    from benchmarks import balloon as bench
    from mrcnn import model as modellib
    from mrcnn.weights import layers_with_weights
    from samples.balloon import train as balloon_train
    from samples.shapes import train as shapes_train

    calls = {}

    def fake_shapes(argv):
        calls["shapes"] = argv
        return {"checkpoint": "shapes.weights.h5", "steps": 1, "mask_mAP50": 0.0}

    def fake_balloon(argv):
        calls["balloon"] = argv
        return {"mask_mAP50": 0.0, "bbox_mAP50": 0.0, "coco_mask_AP": 0.0, "coco_bbox_AP": 0.0,
                "train_seconds": 1.0, "steps": 1, "images_per_step": 4,
                "curve": str(tmp_path / "curve.png")}

    monkeypatch.setattr(shapes_train, "main", fake_shapes)
    monkeypatch.setattr(balloon_train, "main", fake_balloon)
    bench.main(["--flat-shapes", "--shapes-epochs", "1", "--architecture",
                "MASK_HEAD_CHANNELS=64", "--", "--dataset", "d"])
    shapes_set = dict(shapes_train.parse_args(calls["shapes"]).set)
    balloon_set = dict(balloon_train.parse_args(calls["balloon"]).set)
    assert balloon_set == {"MASK_HEAD_CHANNELS": 64}
    assert shapes_set["MASK_HEAD_CHANNELS"] == 64  # --architecture wins over the default
    assert shapes_set["BOX_HEAD"] == balloon_train.BalloonTrainConfig.BOX_HEAD == "4conv1fc"
    assert shapes_set["FPN_BATCH_NORM"] is True
    assert calls["balloon"][-2:] == ["--weights", "shapes.weights.h5"]

    backbone = dict(balloon_train.backbones()["mini"])
    configs = [type("S", (shapes_train.ShapesTrainConfig,), {**backbone, **shapes_set})(),
               type("B", (balloon_train.BalloonTrainConfig,), {**backbone, **balloon_set})()]
    layers = []
    for config in configs:
        model = modellib.MaskRCNN("inference", config, str(tmp_path))
        # The layers that loading by name matches (weights.load_weights).
        layers.append({layer.name: [tuple(w.shape) for w in layer.weights]
                       for layer in layers_with_weights(model.keras_model)})
    class_specific = ("mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_mask")
    shapes_layers = {k: v for k, v in layers[0].items() if k not in class_specific}
    assert {"mrcnn_box_conv4", "mrcnn_box_bn4", "fpn_p2_bn"} <= set(shapes_layers)
    assert "mrcnn_class_conv2" not in shapes_layers  # matterport's second FC: the 2fc head
    different = {k: v for k, v in shapes_layers.items() if layers[1].get(k) != v}
    assert not different
    assert set(layers[1]) - set(layers[0]) == set()

