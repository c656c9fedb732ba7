"""Numerical parity with torchvision's maskrcnn_resnet50_fpn and keypointrcnn_resnet50_fpn on
random weights.

torchvision builds the reference: a seeded random model (BatchNorm statistics randomised too,
class and objectness biases raised so that there are detections), its state_dict saved to a
.pth, loaded into mrcnn's Keras model built from TorchvisionMaskRCNNConfig; both run on the same
preprocessed 480x640 image (torchvision's transform: resize to 800x1066, normalize, pad to
800x1088) and every stage is compared.
"""

import importlib.util

import numpy as np
import pytest

from mrcnn import builder
from mrcnn.ops.boxes import compute_overlaps
from mrcnn.ops.image_meta import compose_image_meta
from mrcnn.presets import (
    TorchvisionKeypointRCNNConfig,
    TorchvisionMaskRCNNConfig,
    TorchvisionMaskRCNNV2Config,
)
from mrcnn.torchvision_postprocess import detect_torchvision, mold_inputs_torchvision
from mrcnn.torchvision_weights import (
    CLASS_SPECIFIC_LAYERS,
    KEYPOINT_SPECIFIC_LAYERS,
    TorchvisionWeightsError,
    load_torchvision_weights,
    read_state_dict,
)
from tests.helpers import torchvision_reference

# Not importorskip: torchvision must not be imported in this (TensorFlow) process, see
# tests/torchvision_reference.py.
if importlib.util.find_spec("torchvision") is None:
    pytest.skip("torchvision is not installed", allow_module_level=True)

pytestmark = pytest.mark.slow

STAGE_LAYERS = ["res2c_out", "res3d_out", "res4f_out", "res5c_out",
                "fpn_p2", "fpn_p3", "fpn_p4", "fpn_p5", "fpn_p6"]


_BUILT = {}


@pytest.fixture(scope="module")
def parity(tmp_path_factory):
    """maskrcnn_resnet50_fpn (v1)."""
    return _parity("v1", tmp_path_factory)


@pytest.fixture(scope="module", params=["v1", "v2"])
def both(request, tmp_path_factory):
    """maskrcnn_resnet50_fpn, then maskrcnn_resnet50_fpn_v2 (TorchvisionMaskRCNNV2Config)."""
    return _parity(request.param, tmp_path_factory)


def _parity(version, tmp_path_factory):
    if version not in _BUILT:
        _BUILT[version] = _build_parity(version, tmp_path_factory)
    return _BUILT[version]


def _build_parity(version, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"tv_{version}")
    v2 = version == "v2"
    ref = torchvision_reference(out, "reference_v2.npz" if v2 else "reference.npz",
                                *(["--v2"] if v2 else []))
    ref["stages"] = [ref.pop(f"stage{i}") for i in range(len(STAGE_LAYERS))]
    path = out / ("maskrcnn_v2_random.pth" if v2 else "maskrcnn_random.pth")

    config = TorchvisionMaskRCNNV2Config() if v2 else TorchvisionMaskRCNNConfig()
    from mrcnn import model as modellib

    mrcnn_model = modellib.MaskRCNN("inference", config, model_dir=str(out / "logs"))
    assert mrcnn_model.load_torchvision_weights(path, verbose=0) == len(
        [k for k in read_state_dict(path) if not k.endswith("num_batches_tracked")])
    model = mrcnn_model.keras_model
    molded = ref["molded"]
    h, w = (int(v) for v in ref["image_size"])
    image = ref["image"]
    meta = compose_image_meta(0, image.shape, molded.shape[1:], (0, 0, h, w), h / image.shape[0],
                              np.zeros([config.NUM_CLASSES], np.int32))[None].astype(np.float32)
    import keras

    # v2's P2..P5 are the FPN convs' BatchNorm outputs.
    stages = [n + "_bn" if v2 and n[-1] in "2345" and n.startswith("fpn") else n
              for n in STAGE_LAYERS]
    probe = keras.Model(model.inputs, [model.get_layer(n).output for n in stages]
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
        "raw_detections": outs[-2][0], "raw_masks": outs[-1][0],
    }
    return {"ref": ref, "ours": ours, "path": path, "config": config, "model": model,
            "image": image, "image_size": (h, w), "version": version}


def _iou_xyxy(a, b):
    """IoU matrix of (x1, y1, x2, y2) boxes, via the (y1, x1, y2, x2) reference function."""
    return compute_overlaps(a[:, [1, 0, 3, 2]], b[:, [1, 0, 3, 2]])


def test_backbone_and_fpn_features(both):
    parity = both
    names = ["C2", "C3", "C4", "C5", "P2", "P3", "P4", "P5", "P6"]
    for name, ref, ours in zip(names, parity["ref"]["stages"], parity["ours"]["stages"]):
        assert ref.shape == ours.shape, name
        scale = np.abs(ref).max()
        diff = np.abs(ref - ours).max() / scale
        assert diff <= 1e-4, f"{name}: max abs diff {diff:.2e} of the map's scale {scale:.3g}"


def test_rpn_proposals(both):
    parity = both
    ref, ours = parity["ref"]["proposals"], parity["ours"]["proposals"]
    assert len(ref) == len(ours) == 1000
    # Each of torchvision's top 100 has its twin among ours, at most 3 ranks away (proposals
    # whose scores differ by float rounding may swap places).
    ious = _iou_xyxy(ref[:100], ours[:103])
    best = np.argmax(ious, axis=1)
    assert ious[np.arange(100), best].min() >= 0.99, ious[np.arange(100), best].min()
    assert np.abs(best - np.arange(100)).max() <= 3
    assert len(set(best.tolist())) == 100


def test_detections_match_one_to_one(both):
    parity = both
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


def test_mask_probabilities(both):
    parity = both
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


def test_preprocessing_matches_torchvision_transform(both):
    parity = both
    ref = parity["ref"]
    molded, metas, windows = mold_inputs_torchvision([ref["image"]], parity["config"])
    assert molded.shape == ref["molded"].shape
    assert tuple(windows[0]) == (0, 0) + tuple(int(v) for v in ref["image_size"])
    assert np.abs(molded - ref["molded"]).max() <= 1e-4 * np.abs(ref["molded"]).max()


def test_end_to_end_from_the_raw_image(both):
    parity = both
    """detect_torchvision on the uint8 image vs torchvision's final output: boxes in original
    pixels and pasted masks."""
    ref = parity["ref"]
    (result,) = detect_torchvision(parity["model"], parity["config"], [ref["image"]])
    ref_boxes = ref["final_boxes"][:, [1, 0, 3, 2]]  # (y1, x1, y2, x2)
    ious = compute_overlaps(ref_boxes, result["rois"])
    same = ref["labels"][:, None] == result["class_ids"][None, :]
    match = np.argmax(np.where(same, ious, -1), axis=1)
    assert len(set(match.tolist())) == len(match) == len(result["rois"])
    assert ious[np.arange(len(match)), match].min() >= 0.99
    assert np.abs(ref["scores"] - result["scores"][match]).max() <= 1e-3
    a = ref["final_masks"]  # [N, H, W]
    b = np.moveaxis(result["masks"], -1, 0)[match]
    inter = np.sum(a & b, axis=(1, 2))
    union = np.sum(a | b, axis=(1, 2))
    # Random weights leave a few masks empty on both sides (v2): they agree; most are not.
    assert np.mean(union > 0) >= 0.8, np.mean(union > 0)
    iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    assert iou.min() >= 0.99, iou.min()


def test_fine_tuning_excludes_class_specific_layers(parity):
    config = type("Three", (TorchvisionMaskRCNNConfig,), {"NUM_CLASSES": 3})()
    model = builder.build_inference_model(config)
    with pytest.raises(TorchvisionWeightsError, match="shape mismatches \\(3\\)"):
        load_torchvision_weights(model, config, parity["path"])
    before = model.get_layer("mrcnn_mask").get_weights()[0].copy()
    load_torchvision_weights(model, config, parity["path"], exclude=CLASS_SPECIFIC_LAYERS)
    np.testing.assert_array_equal(model.get_layer("mrcnn_mask").get_weights()[0], before)
    np.testing.assert_array_equal(model.get_layer("mrcnn_mask_conv1").get_weights()[0],
                                  parity["model"].get_layer("mrcnn_mask_conv1").get_weights()[0])


def test_legacy_key_names_load(parity):
    """torchvision < 0.13 checkpoints (the published COCO file) use older module names."""
    sd = read_state_dict(parity["path"])
    legacy = {}
    for k, v in sd.items():
        k = k.replace("rpn.head.conv.0.0.", "rpn.head.conv.")
        for block in ("inner_blocks", "layer_blocks"):
            for i in range(4):
                k = k.replace(f"fpn.{block}.{i}.0.", f"fpn.{block}.{i}.")
        for i in range(4):
            k = k.replace(f"roi_heads.mask_head.{i}.0.", f"roi_heads.mask_head.mask_fcn{i + 1}.")
        legacy[k] = v
    assert "rpn.head.conv.weight" in legacy and "roi_heads.mask_head.mask_fcn4.bias" in legacy
    model, config = parity["model"], parity["config"]
    before = model.get_layer("mrcnn_mask_conv4").get_weights()[1].copy()
    load_torchvision_weights(model, config, legacy)
    np.testing.assert_array_equal(model.get_layer("mrcnn_mask_conv4").get_weights()[1], before)


def test_truncated_state_dict_lists_missing_keys(parity):
    sd = read_state_dict(parity["path"])
    del sd["roi_heads.box_head.fc6.weight"]
    sd["roi_heads.extra.weight"] = np.zeros(3, np.float32)
    sd["rpn.head.bbox_pred.bias"] = np.zeros(5, np.float32)
    with pytest.raises(TorchvisionWeightsError) as e:
        load_torchvision_weights(parity["model"], parity["config"], sd)
    msg = str(e.value)
    assert "missing keys (1): roi_heads.box_head.fc6.weight" in msg
    assert "unexpected keys (1): roi_heads.extra.weight" in msg
    assert "rpn.head.bbox_pred.bias" in msg and "shape mismatches (1)" in msg


def test_v1_and_v2_checkpoints_name_the_preset_they_need(tmp_path_factory):
    """Each version's state_dict into the other version's model: the error names the
    switches that differ and the preset to use, and nothing is assigned."""
    v1, v2 = _parity("v1", tmp_path_factory), _parity("v2", tmp_path_factory)
    before = v1["model"].get_layer("fpn_p2").get_weights()[0].copy()
    with pytest.raises(TorchvisionWeightsError, match="maskrcnn_resnet50_fpn_v2") as e:
        load_torchvision_weights(v1["model"], v1["config"], v2["path"])
    for switch in ("FPN_BATCH_NORM = False", "RPN_CONV_DEPTH = 1", "BOX_HEAD = '2fc'",
                   "HEADS_BATCH_NORM = False", "TorchvisionMaskRCNNV2Config"):
        assert switch in str(e.value), switch
    np.testing.assert_array_equal(v1["model"].get_layer("fpn_p2").get_weights()[0], before)
    with pytest.raises(TorchvisionWeightsError, match="use mrcnn.presets.TorchvisionMaskRCNN"
                                                      "Config") as e:
        load_torchvision_weights(v2["model"], v2["config"], v1["path"])
    assert "FPN_BATCH_NORM = True" in str(e.value)


# --- Keypoint R-CNN: keypointrcnn_resnet50_fpn on random weights ---

@pytest.fixture(scope="module")
def keypoint_parity(tmp_path_factory):
    out = tmp_path_factory.mktemp("tvkp")
    ref = torchvision_reference(out, "keypoint_reference.npz", "--keypoint", timeout=900)
    path = out / "keypointrcnn_random.pth"
    config = TorchvisionKeypointRCNNConfig()
    from mrcnn import model as modellib

    mrcnn_model = modellib.MaskRCNN("inference", config, model_dir=str(out / "logs"))
    assert mrcnn_model.load_torchvision_weights(path, verbose=0) == len(
        [k for k in read_state_dict(path) if not k.endswith("num_batches_tracked")])
    model = mrcnn_model.keras_model
    molded = ref["molded"]
    h, w = (int(v) for v in ref["image_size"])
    image = ref["image"]
    meta = compose_image_meta(0, image.shape, molded.shape[1:], (0, 0, h, w), h / image.shape[0],
                              np.zeros([config.NUM_CLASSES], np.int32))[None].astype(np.float32)
    outs = model.predict([molded, meta, np.zeros((1, 1, 4), np.float32)], verbose=0)
    names = builder.inference_output_names(config)
    det = outs[names.index("mrcnn_detection")][0]
    keep = det[:, 5] > 0
    det = det[keep]
    hp, wp = molded.shape[1:3]
    scale = np.array([hp - 1, wp - 1, hp - 1, wp - 1])
    ours = {
        "boxes": (det[:, :4] * scale + np.array([0, 0, 1, 1]))[:, [1, 0, 3, 2]],
        "labels": det[:, 4].astype(int), "scores": det[:, 5],
        "heatmaps": outs[names.index("mrcnn_keypoint")][0][keep],
    }
    return {"ref": ref, "ours": ours, "path": path, "config": config, "model": model}


def _match(ref_boxes, ref_labels, boxes, labels):
    ious = _iou_xyxy(ref_boxes, boxes)
    same = ref_labels[:, None] == labels[None, :]
    match = np.argmax(np.where(same, ious, -1), axis=1)
    return match, ious[np.arange(len(match)), match]


def test_keypoint_rcnn_detections_match_one_to_one(keypoint_parity):
    ref, ours = keypoint_parity["ref"], keypoint_parity["ours"]
    assert len(ref["boxes"]) >= 10, "the random model should give detections"
    assert len(ref["boxes"]) == len(ours["boxes"])
    assert np.ptp(ref["scores"]) > 0.05, "scores should vary (no ties at 1.0)"
    match, iou = _match(ref["boxes"], ref["labels"], ours["boxes"], ours["labels"])
    assert len(set(match.tolist())) == len(match), "matching is not one to one"
    assert np.all(ref["labels"] == ours["labels"][match])
    assert iou.min() >= 0.99, iou.min()
    assert np.abs(ref["scores"] - ours["scores"][match]).max() <= 1e-3


def test_keypoint_heatmaps(keypoint_parity):
    """The keypoint head (RoIAlign 14x14, 8 convs, ConvTranspose2d(4, 2, padding 1), bilinear
    2x upsampling) gives torchvision's 56x56 logits on matched detections."""
    ref, ours = keypoint_parity["ref"], keypoint_parity["ours"]
    match, _ = _match(ref["boxes"], ref["labels"], ours["boxes"], ours["labels"])
    assert ref["heatmaps"].shape == ours["heatmaps"][match].shape == (len(match), 56, 56, 17)
    scale = np.abs(ref["heatmaps"]).max()
    diff = np.abs(ref["heatmaps"] - ours["heatmaps"][match]).max() / scale
    assert diff <= 1e-3, f"max abs diff {diff:.2e} of the logits' scale {scale:.3g}"


def test_keypoints_end_to_end_from_the_raw_image(keypoint_parity):
    """detect_torchvision's keypoints vs torchvision's final output (original pixels) and its
    keypoints_scores."""
    ref = keypoint_parity["ref"]
    (result,) = detect_torchvision(keypoint_parity["model"], keypoint_parity["config"],
                                   [ref["image"]])
    ref_boxes = ref["final_boxes"]
    match, iou = _match(ref_boxes, ref["labels"], result["rois"][:, [1, 0, 3, 2]],
                        result["class_ids"])
    assert len(set(match.tolist())) == len(match) == len(result["rois"])
    assert iou.min() >= 0.99
    assert result["masks"].shape[-1] == len(match) and not result["masks"].any()
    ours = result["keypoints"][match]
    assert ours.shape == ref["final_keypoints"].shape == (len(match), 17, 3)
    dist = np.abs(ours[..., :2] - ref["final_keypoints"][..., :2]).max()
    assert dist <= 1.0, f"keypoints up to {dist:.2f} px apart"
    score_diff = np.abs(ours[..., 2] - ref["keypoints_scores"]).max()
    assert score_diff <= 1e-2 * np.abs(ref["keypoints_scores"]).max(), score_diff


def test_keypoint_state_dict_mismatches_are_listed(keypoint_parity):
    sd = read_state_dict(keypoint_parity["path"])
    del sd["roi_heads.keypoint_head.14.weight"]
    sd["roi_heads.mask_head.0.0.weight"] = np.zeros((256, 256, 3, 3), np.float32)
    sd["roi_heads.keypoint_predictor.kps_score_lowres.bias"] = np.zeros(5, np.float32)
    model, config = keypoint_parity["model"], keypoint_parity["config"]
    before = model.get_layer("mrcnn_keypoint_conv1").get_weights()[0].copy()
    with pytest.raises(TorchvisionWeightsError) as e:
        load_torchvision_weights(model, config, sd)
    msg = str(e.value)
    assert "missing keys (1): roi_heads.keypoint_head.14.weight" in msg
    assert "unexpected keys (1): roi_heads.mask_head.0.0.weight" in msg
    assert "kps_score_lowres.bias -> mrcnn_keypoint_deconv" in msg
    assert "shape mismatches (1)" in msg
    np.testing.assert_array_equal(model.get_layer("mrcnn_keypoint_conv1").get_weights()[0],
                                  before)
    # The Mask R-CNN state_dict does not fit the keypoint model either.
    with pytest.raises(TorchvisionWeightsError, match="missing keys .*keypoint_head"):
        load_torchvision_weights(model, config, {k: v for k, v in sd.items()
                                                 if "keypoint" not in k})
    # Fine-tuning on other classes: the class-specific layers (mrcnn_mask is absent here).
    sd = read_state_dict(keypoint_parity["path"])
    n = load_torchvision_weights(model, config, sd, exclude=CLASS_SPECIFIC_LAYERS
                                 + KEYPOINT_SPECIFIC_LAYERS)
    assert n == len([k for k in sd if not k.endswith("num_batches_tracked")])
