"""Numerical parity with torchvision's maskrcnn_resnet50_fpn on random weights.

torchvision builds the reference: a seeded random model (BatchNorm statistics randomised too,
class and objectness biases raised so that there are detections), its state_dict saved to a
.pth, loaded into mrcnn's Keras model built from TorchvisionMaskRCNNConfig; both run on the same
preprocessed 480x640 image (torchvision's transform: resize to 800x1066, normalize, pad to
800x1088) and every stage is compared.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from mrcnn import builder  # noqa: E402
from mrcnn.ops.boxes import compute_overlaps  # noqa: E402
from mrcnn.ops.image_meta import compose_image_meta  # noqa: E402
from mrcnn.presets import TorchvisionMaskRCNNConfig  # noqa: E402
from mrcnn.torchvision_weights import (  # noqa: E402
    TorchvisionWeightsError,
    load_torchvision_weights,
)

pytestmark = pytest.mark.slow

STAGE_LAYERS = ["res2c_out", "res3d_out", "res4f_out", "res5c_out",
                "fpn_p2", "fpn_p3", "fpn_p4", "fpn_p5", "fpn_p6"]


def _random_torch_model(seed=0):
    torch.manual_seed(seed)
    model = torchvision.models.detection.maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=91)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
        # Non-trivial heads: objectness and per-class scores that vary from box to box, a few
        # classes likely enough to give detections, visible box refinements.
        model.rpn.head.cls_logits.weight.normal_(0.0, 0.05)
        predictor = model.roi_heads.box_predictor
        predictor.cls_score.weight.normal_(0.0, 0.05)
        predictor.cls_score.bias.zero_()
        predictor.cls_score.bias[[1, 3, 18, 62]] = torch.tensor([4.0, 3.5, 3.0, 3.5])
        predictor.bbox_pred.weight.normal_(0.0, 0.01)
    return model.eval()


def _image(seed=1):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:480, 0:640]
    image = np.stack([(x * 0.4) % 256, (y * 0.5) % 256, ((x + y) * 0.3) % 256], axis=-1)
    for _ in range(6):  # a few flat rectangles to give the network some structure
        y1, x1 = rng.integers(0, 380), rng.integers(0, 540)
        image[y1:y1 + rng.integers(40, 100), x1:x1 + rng.integers(40, 100)] = \
            rng.integers(0, 256, 3)
    return image.astype(np.uint8)


@pytest.fixture(scope="module")
def parity(tmp_path_factory):
    tv = _random_torch_model()
    path = tmp_path_factory.mktemp("tv") / "maskrcnn_random.pth"
    torch.save(tv.state_dict(), path)
    image = _image()
    with torch.no_grad():
        tensor = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
        images, _ = tv.transform([tensor])
        body = tv.backbone.body(images.tensors)
        feats = tv.backbone.fpn(body)
        proposals, _ = tv.rpn(images, feats)
        dets, _ = tv.roi_heads(feats, proposals, images.image_sizes)
        final = tv.transform.postprocess(dets, images.image_sizes, [image.shape[:2]])
    ref = {
        "stages": [v.permute(0, 2, 3, 1).numpy() for v in body.values()]
                  + [v.permute(0, 2, 3, 1).numpy() for v in feats.values()],
        "proposals": proposals[0].numpy(),
        "boxes": dets[0]["boxes"].numpy(), "labels": dets[0]["labels"].numpy(),
        "scores": dets[0]["scores"].numpy(), "mask_probs": dets[0]["masks"][:, 0].numpy(),
        "final_masks": final[0]["masks"][:, 0].numpy() > 0.5,
        "final_boxes": final[0]["boxes"].numpy(),
    }

    config = TorchvisionMaskRCNNConfig()
    model = builder.build_inference_model(config)
    load_torchvision_weights(model, config, path)
    molded = images.tensors.permute(0, 2, 3, 1).numpy()
    h, w = images.image_sizes[0]
    meta = compose_image_meta(0, image.shape, molded.shape[1:], (0, 0, h, w), h / 480.0,
                              np.zeros([config.NUM_CLASSES], np.int32))[None].astype(np.float32)
    import keras

    probe = keras.Model(model.inputs, [model.get_layer(n).output for n in STAGE_LAYERS]
                        + [model.get_layer("ROI").output,
                           model.get_layer("mrcnn_detection").output,
                           model.get_layer("mrcnn_mask").output])
    anchors = np.zeros((1, 1, 4), np.float32)  # unused: the torchvision layout is in-graph
    outs = probe.predict([molded, meta, anchors], verbose=0)
    hp, wp = molded.shape[1:3]
    scale = np.array([hp - 1, wp - 1, hp - 1, wp - 1])
    shift = np.array([0, 0, 1, 1])
    rois = outs[-3][0]
    rois = rois[np.any(rois != 0, axis=1)] * scale + shift
    det = outs[-2][0]
    det = det[det[:, 5] > 0]
    ours = {
        "stages": outs[:len(STAGE_LAYERS)],
        "proposals": rois[:, [1, 0, 3, 2]],  # (x1, y1, x2, y2) pixels, as torchvision
        "boxes": (det[:, :4] * scale + shift)[:, [1, 0, 3, 2]],
        "labels": det[:, 4].astype(int), "scores": det[:, 5],
        "mask_probs": outs[-1][0][np.arange(len(det)), :, :, det[:, 4].astype(int)],
    }
    return {"ref": ref, "ours": ours, "path": path, "config": config, "model": model,
            "image": image, "image_size": (h, w)}


def _iou_xyxy(a, b):
    """IoU matrix of (x1, y1, x2, y2) boxes, via the (y1, x1, y2, x2) reference function."""
    return compute_overlaps(a[:, [1, 0, 3, 2]], b[:, [1, 0, 3, 2]])


def test_backbone_and_fpn_features(parity):
    names = ["C2", "C3", "C4", "C5", "P2", "P3", "P4", "P5", "P6"]
    for name, ref, ours in zip(names, parity["ref"]["stages"], parity["ours"]["stages"]):
        assert ref.shape == ours.shape, name
        scale = np.abs(ref).max()
        diff = np.abs(ref - ours).max() / scale
        assert diff <= 1e-4, f"{name}: max abs diff {diff:.2e} of the map's scale {scale:.3g}"


def test_rpn_proposals(parity):
    ref, ours = parity["ref"]["proposals"], parity["ours"]["proposals"]
    assert len(ref) == len(ours)
    ious = np.diag(_iou_xyxy(ref[:100], ours[:100]))
    assert ious.min() >= 0.99, ious.min()


def test_detections_match_one_to_one(parity):
    ref, ours = parity["ref"], parity["ours"]
    assert len(ref["boxes"]) >= 10, "the random model should give detections"
    assert len(ref["boxes"]) == len(ours["boxes"])
    assert len(set(ref["labels"].tolist())) > 1
    ious = _iou_xyxy(ref["boxes"], ours["boxes"])
    same = ref["labels"][:, None] == ours["labels"][None, :]
    match = np.argmax(np.where(same, ious, -1), axis=1)
    assert len(set(match.tolist())) == len(match), "matching is not one to one"
    assert np.all(ref["labels"] == ours["labels"][match])
    assert ious[np.arange(len(match)), match].min() >= 0.99
    assert np.abs(ref["scores"] - ours["scores"][match]).max() <= 1e-3


def test_mask_probabilities(parity):
    ref, ours = parity["ref"], parity["ours"]
    ious = _iou_xyxy(ref["boxes"], ours["boxes"])
    match = np.argmax(ious, axis=1)
    a = ref["mask_probs"] > 0.5
    b = ours["mask_probs"][match] > 0.5
    inter = np.sum(a & b, axis=(1, 2))
    union = np.sum(a | b, axis=(1, 2))
    mask_iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    assert mask_iou.min() >= 0.99, mask_iou.min()
    assert np.abs(ref["mask_probs"] - ours["mask_probs"][match]).max() <= 1e-3


def test_truncated_state_dict_lists_missing_keys(parity):
    sd = torch.load(parity["path"], weights_only=True)
    del sd["roi_heads.box_head.fc6.weight"]
    sd["roi_heads.extra.weight"] = torch.zeros(3)
    sd["rpn.head.bbox_pred.bias"] = torch.zeros(5)
    with pytest.raises(TorchvisionWeightsError) as e:
        load_torchvision_weights(parity["model"], parity["config"], sd)
    msg = str(e.value)
    assert "missing keys (1): roi_heads.box_head.fc6.weight" in msg
    assert "unexpected keys (1): roi_heads.extra.weight" in msg
    assert "rpn.head.bbox_pred.bias" in msg and "shape mismatches (1)" in msg
