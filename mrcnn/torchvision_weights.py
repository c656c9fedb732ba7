"""Loading torchvision's maskrcnn_resnet50_fpn (v1 and v2) / keypointrcnn_resnet50_fpn
state_dicts into mrcnn's Keras model, and torchvision's ImageNet ResNet / ResNeXt classifiers
into its backbone (load_torchvision_backbone_weights).

The Keras model must be built with a config that reproduces torchvision's architecture
(mrcnn.presets.TorchvisionMaskRCNNConfig, TorchvisionMaskRCNNV2Config or
TorchvisionKeypointRCNNConfig, or a subclass with another NUM_CLASSES); a v2 state_dict is
recognised by its second RPN conv (V2_KEY). Each torchvision tensor is mapped to one Keras
weight:

- convolutions: OIHW -> HWIO; transposed convolutions: (in, out, kh, kw) -> (kh, kw, out, in);
- torchvision's bias-free ResNet convolutions load a zero bias into matterport's biased ones
  (the ResNeXt convolutions are bias-free on both sides; grouped kernels transpose alike);
- BatchNorm (frozen or not): weight, bias, running_mean, running_var -> gamma, beta,
  moving_mean, moving_variance (the epsilon is Config.BN_EPSILON, 1e-5 in the preset);
- the RPN's one objectness logit per anchor l -> matterport's two-way softmax logits (0, l)
  (softmax((0, l))[1] = sigmoid(l) exactly);
- box deltas (dx, dy, dw, dh) -> (dy, dx, dh, dw), for the RPN and the per-class box head;
- the box head's fc6 reads the pooled features flattened as (channel, y, x); mrcnn's
  mrcnn_class_conv1 is a 7x7 convolution over them, i.e. an FC layer on the (y, x, channel)
  flattening: its kernel is fc6's weight reshaped to (1024, C, 7, 7) and moved to (7, 7, C, 1024);
- v2: each Conv2dNormActivation (FPN, box and mask heads) is a bias-free conv (".0", into a
  bias-free Keras conv, or with a zero bias into matterport's mask convs) and its BatchNorm
  (".1", into the layer named after the conv with "_bn", or mrcnn_box_bn* / mrcnn_mask_bn*);
  the RPN's second conv -> rpn_conv_shared2; the box head's FC (box_head.5) -> mrcnn_class_conv1
  as fc6 above;
- Keypoint R-CNN: keypoint_head.{0, 2, ..., 14} (convs between ReLUs) -> mrcnn_keypoint_conv1..8,
  keypoint_predictor.kps_score_lowres (a transposed conv) -> mrcnn_keypoint_deconv; a model
  without the mask head (USE_MASK_HEAD False) takes no mask tensors.

The checkpoint's legacy key names (torchvision before 0.13: `rpn.head.conv.weight`,
`backbone.fpn.inner_blocks.0.weight`, `roi_heads.mask_head.mask_fcn1.weight`) are accepted too.
"""

import re

import numpy as np

from mrcnn.download import (  # re-exported: they were defined here
    TORCHVISION_CHECKPOINTS,
    download_torchvision_checkpoint,
)
from mrcnn.presets import TorchvisionMaskRCNNConfig, TorchvisionMaskRCNNV2Config

__all__ = ["TorchvisionWeightsError", "load_torchvision_weights", "read_state_dict",
           "torchvision_key_map", "trunk_key_map", "load_torchvision_backbone_weights",
           "TRUNK_BLOCKS", "CLASSIFIER_KEYS", "TORCHVISION_CHECKPOINTS", "CLASS_SPECIFIC_LAYERS",
           "download_torchvision_checkpoint",
           "KEYPOINT_SPECIFIC_LAYERS", "V2_KEY"]

# Bottleneck blocks of layer1..layer4 in torchvision's trunks.
TRUNK_BLOCKS = {"resnet50": (3, 4, 6, 3), "resnet101": (3, 4, 23, 3),
                "resnext50_32x4d": (3, 4, 6, 3), "resnext101_32x8d": (3, 4, 23, 3)}
_LEGACY = [
    (re.compile(r"^rpn\.head\.conv\.(weight|bias)$"), r"rpn.head.conv.0.0.\1"),
    (re.compile(r"^backbone\.fpn\.(inner|layer)_blocks\.(\d)\.(weight|bias)$"),
     r"backbone.fpn.\1_blocks.\2.0.\3"),
    (re.compile(r"^roi_heads\.mask_head\.mask_fcn(\d)\.(weight|bias)$"),
     lambda m: f"roi_heads.mask_head.{int(m.group(1)) - 1}.0.{m.group(2)}"),
]


class TorchvisionWeightsError(ValueError):
    """The state_dict does not fit the model: the message lists missing, unexpected and
    mismatched keys."""


def read_state_dict(path_or_state_dict):
    """A {name: float32 np.ndarray} dict from a .pth path or a state_dict (tensors or arrays).

    Reading a file needs torch (imported here only); `weights_only=True` so that loading runs
    no pickled code. A checkpoint that wraps the weights ({"model": state_dict}) is unwrapped.
    """
    sd = path_or_state_dict
    if not isinstance(sd, dict):
        import torch

        sd = torch.load(str(path_or_state_dict), map_location="cpu", weights_only=True)
        if isinstance(sd, dict) and "model" in sd and isinstance(sd["model"], dict):
            sd = sd["model"]
        if not isinstance(sd, dict):
            raise TorchvisionWeightsError(
                f"{path_or_state_dict}: expected a state_dict (dict of tensors), got "
                f"{type(sd).__name__}")
    out = {}
    for key, value in sd.items():
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        out[_modern_key(key)] = np.asarray(value)
    return out


def _modern_key(key):
    for pattern, repl in _LEGACY:
        if pattern.match(key):
            return pattern.sub(repl, key)
    return key


def _conv(w):
    return np.transpose(w, (2, 3, 1, 0))


def _deconv(w):
    return np.transpose(w, (2, 3, 1, 0))


def _yx(v, width=4):
    """Reorders the last axis' groups of 4 from (x, y, w, h) to (y, x, h, w)."""
    shape = v.shape
    v = v.reshape(shape[:-1] + (shape[-1] // width, width))
    return v[..., [1, 0, 3, 2]].reshape(shape)


def _rpn_class(w, b):
    """One logit per anchor -> (0, logit) per anchor, interleaved as mrcnn's Reshape(-1, 2)."""
    kernel = _conv(w)  # [1, 1, C, A]
    out_k = np.zeros(kernel.shape[:3] + (2 * kernel.shape[3],), kernel.dtype)
    out_k[..., 1::2] = kernel
    out_b = np.zeros(2 * b.shape[0], b.dtype)
    out_b[1::2] = b
    return out_k, out_b


def _bn_keys(prefix):
    return [f"{prefix}.weight", f"{prefix}.bias", f"{prefix}.running_mean",
            f"{prefix}.running_var"]


def trunk_key_map(architecture="resnet50", prefix=""):
    """[(keras layer name, [torchvision keys], transform)] of a torchvision ResNet / ResNeXt
    trunk (conv1, bn1, layer1..layer4) whose modules are under `prefix`: "backbone.body." in
    a detection model, "" in an ImageNet classifier (torchvision.models.resnet50,
    resnext50_32x4d, ...).

    torchvision's convolutions have no bias: matterport's biased ResNet convolutions take a zero
    bias, the bias-free ResNeXt ones (mrcnn.backbone.resnext) the kernel only. Grouped 3x3
    kernels [out, in / groups, 3, 3] become Keras' [3, 3, in / groups, out] by the same
    transpose: both frameworks give group g the g-th slices of the input and output channels.
    """
    from mrcnn.backbone.resnext import RESNEXT_ARCHITECTURES

    if architecture not in TRUNK_BLOCKS:
        raise TorchvisionWeightsError(f"no torchvision trunk {architecture!r} (known: "
                                      f"{', '.join(TRUNK_BLOCKS)})")
    biased = architecture not in RESNEXT_ARCHITECTURES
    entries = []

    def conv(name, key):
        if biased:
            entries.append((name, [key], lambda w: [_conv(w), np.zeros(w.shape[0], w.dtype)]))
        else:
            entries.append((name, [key], lambda w: [_conv(w)]))

    def bn(name, key_prefix):
        entries.append((name, _bn_keys(key_prefix), lambda *a: list(a)))

    conv("conv1", f"{prefix}conv1.weight")
    bn("bn_conv1", f"{prefix}bn1")
    for layer, count in enumerate(TRUNK_BLOCKS[architecture]):
        stage = layer + 2
        for i in range(count):
            tv = f"{prefix}layer{layer + 1}.{i}"
            mr = f"{stage}{chr(97 + i)}"
            for j, branch in enumerate("abc"):
                conv(f"res{mr}_branch2{branch}", f"{tv}.conv{j + 1}.weight")
                bn(f"bn{mr}_branch2{branch}", f"{tv}.bn{j + 1}")
            if i == 0:
                conv(f"res{mr}_branch1", f"{tv}.downsample.0.weight")
                bn(f"bn{mr}_branch1", f"{tv}.downsample.1")
    return entries


def torchvision_key_map(architecture="resnet50", batch_norm_heads=False, mask_head=True,
                        keypoint_convs=0, v2=False):
    """[(keras layer name, [torchvision keys], transform)] for every weighted layer.

    transform(*arrays) returns the Keras layer's weight list. The RPN layers are named as inside
    the nested rpn_model ("rpn_model/rpn_conv_shared"). mask_head: include the mask head's
    layers; keypoint_convs: the keypoint head's number of 3x3 convs (0: no keypoint head).
    v2: maskrcnn_resnet50_fpn_v2 (presets.TorchvisionMaskRCNNV2Config): each FPN conv and
    head conv is a Conv2dNormActivation (a bias-free conv ".0" and its BatchNorm ".1"), the
    RPN has two convs, and the box head is four such convs and one FC (box_head.5).
    """
    if batch_norm_heads != v2:
        raise TorchvisionWeightsError(
            f"torchvision's Mask R-CNN {'v2' if v2 else 'v1'} heads have "
            f"{'' if v2 else 'no '}BatchNorm: build the model with HEADS_BATCH_NORM = {v2}")
    entries = []

    def conv(name, prefix):
        entries.append((name, [f"{prefix}.weight", f"{prefix}.bias"],
                        lambda w, b: [_conv(w), b]))

    def bn(name, prefix):
        entries.append((name, _bn_keys(prefix), lambda *a: list(a)))

    def conv_bn(name, bn_name, prefix, biased=False):
        """A Conv2dNormActivation: its conv into `name` (a zero bias if the Keras conv has
        one), its BatchNorm into `bn_name`."""
        entries.append((name, [f"{prefix}.0.weight"],
                        (lambda w: [_conv(w), np.zeros(w.shape[0], w.dtype)]) if biased
                        else (lambda w: [_conv(w)])))
        bn(bn_name, f"{prefix}.1")

    entries.extend(trunk_key_map(architecture, "backbone.body."))
    for i, level in enumerate(range(2, 6)):
        for name, block in ((f"fpn_c{level}p{level}", "inner"), (f"fpn_p{level}", "layer")):
            if v2:
                conv_bn(name, f"{name}_bn", f"backbone.fpn.{block}_blocks.{i}")
            else:
                conv(name, f"backbone.fpn.{block}_blocks.{i}.0")
    conv("rpn_model/rpn_conv_shared", "rpn.head.conv.0.0")
    if v2:
        conv("rpn_model/rpn_conv_shared2", "rpn.head.conv.1.0")
    entries.append(("rpn_model/rpn_class_raw", ["rpn.head.cls_logits.weight",
                                                "rpn.head.cls_logits.bias"],
                    lambda w, b: list(_rpn_class(w, b))))
    entries.append(("rpn_model/rpn_bbox_pred", ["rpn.head.bbox_pred.weight",
                                                "rpn.head.bbox_pred.bias"],
                    lambda w, b: [_yx(_conv(w)), _yx(b)]))

    def fc6(w, b):
        c = w.shape[1] // 49
        return [np.transpose(w.reshape(w.shape[0], c, 7, 7), (2, 3, 1, 0)), b]

    if v2:
        # FastRCNNConvFCHead: blocks 0-3 convs, 4 Flatten, 5 the FC layer (then ReLU).
        for i in range(4):
            conv_bn(f"mrcnn_box_conv{i + 1}", f"mrcnn_box_bn{i + 1}", f"roi_heads.box_head.{i}")
        entries.append(("mrcnn_class_conv1", ["roi_heads.box_head.5.weight",
                                              "roi_heads.box_head.5.bias"], fc6))
    else:
        entries.append(("mrcnn_class_conv1", ["roi_heads.box_head.fc6.weight",
                                              "roi_heads.box_head.fc6.bias"], fc6))
        entries.append(("mrcnn_class_conv2", ["roi_heads.box_head.fc7.weight",
                                              "roi_heads.box_head.fc7.bias"],
                        lambda w, b: [w.T[None, None], b]))
    entries.append(("mrcnn_class_logits", ["roi_heads.box_predictor.cls_score.weight",
                                           "roi_heads.box_predictor.cls_score.bias"],
                    lambda w, b: [w.T, b]))
    entries.append(("mrcnn_bbox_fc", ["roi_heads.box_predictor.bbox_pred.weight",
                                      "roi_heads.box_predictor.bbox_pred.bias"],
                    lambda w, b: [_yx(w.T), _yx(b)]))
    if mask_head:
        for i in range(4):
            if v2:  # matterport's mask convs keep their bias before BatchNorm: zero
                conv_bn(f"mrcnn_mask_conv{i + 1}", f"mrcnn_mask_bn{i + 1}",
                        f"roi_heads.mask_head.{i}", biased=True)
            else:
                conv(f"mrcnn_mask_conv{i + 1}", f"roi_heads.mask_head.{i}.0")
        entries.append(("mrcnn_mask_deconv", ["roi_heads.mask_predictor.conv5_mask.weight",
                                              "roi_heads.mask_predictor.conv5_mask.bias"],
                        lambda w, b: [_deconv(w), b]))
        conv("mrcnn_mask", "roi_heads.mask_predictor.mask_fcn_logits")
    if keypoint_convs:
        # KeypointRCNNHeads is nn.Sequential(conv, ReLU, conv, ReLU, ...).
        for i in range(keypoint_convs):
            conv(f"mrcnn_keypoint_conv{i + 1}", f"roi_heads.keypoint_head.{2 * i}")
        entries.append(("mrcnn_keypoint_deconv",
                        ["roi_heads.keypoint_predictor.kps_score_lowres.weight",
                         "roi_heads.keypoint_predictor.kps_score_lowres.bias"],
                        lambda w, b: [_deconv(w), b]))
    return entries


def _get_layer(keras_model, name):
    model = keras_model
    for part in name.split("/")[:-1]:
        model = model.get_layer(part)
    return model.get_layer(name.split("/")[-1])


def _architecture(config):
    backbone = config.BACKBONE
    if not isinstance(backbone, str) or backbone not in TRUNK_BLOCKS:
        raise TorchvisionWeightsError(f"BACKBONE must be one of {', '.join(TRUNK_BLOCKS)} to "
                                      f"load torchvision weights, got {backbone!r}")
    return backbone


CLASS_SPECIFIC_LAYERS = ("mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_mask")
# The layer whose shape depends on NUM_KEYPOINTS (to fine-tune on other keypoints).
KEYPOINT_SPECIFIC_LAYERS = ("mrcnn_keypoint_deconv",)
# The ImageNet classifier's head, which a backbone has no use for.
CLASSIFIER_KEYS = ("fc.weight", "fc.bias")


def load_torchvision_weights(keras_model, config, path_or_state_dict, exclude=None, verbose=0):
    """Sets keras_model's weights from a torchvision Mask R-CNN state_dict.

    keras_model: built by mrcnn.builder from `config` (inference or training); config must
    reproduce torchvision's architecture (mrcnn.presets.TorchvisionMaskRCNNConfig, or
    TorchvisionKeypointRCNNConfig for a Keypoint R-CNN state_dict; BACKBONE may be any of
    TRUNK_BLOCKS, e.g. resnext50_32x4d for a Mask R-CNN built on torchvision's ResNeXt).
    path_or_state_dict: a .pth file or a dict of tensors/arrays.
    exclude: mrcnn layer names left as they are (their torchvision tensors are skipped), e.g.
    CLASS_SPECIFIC_LAYERS to fine-tune on a dataset with another NUM_CLASSES ("mrcnn_mask" is
    ignored for a model without the mask head), KEYPOINT_SPECIFIC_LAYERS for other keypoints.
    Nothing is assigned unless every key is present with the right shape; otherwise raises
    TorchvisionWeightsError listing missing, unexpected and mismatched keys.
    Returns the number of tensors loaded.
    """
    sd = read_state_dict(path_or_state_dict)
    v2 = V2_KEY in sd
    _check_config(config, v2)
    entries = torchvision_key_map(_architecture(config), config.HEADS_BATCH_NORM,
                                  mask_head=config.USE_MASK_HEAD,
                                  keypoint_convs=config.KEYPOINT_HEAD_CONVS
                                  if config.NUM_KEYPOINTS else 0, v2=v2)
    exclude = set(exclude or ())
    if not config.USE_MASK_HEAD:
        exclude.discard("mrcnn_mask")
    unknown = exclude - {name.split("/")[-1] for name, _, _ in entries}
    if unknown:
        raise TorchvisionWeightsError(f"exclude names layers that torchvision's weights do not "
                                      f"cover: {sorted(unknown)}")
    used, assignments = _assign_all(keras_model, sd, entries, exclude)
    if verbose:
        print(f"Loaded {len(used)} torchvision tensors into {len(assignments)} layers")
    return len(used)


def load_torchvision_backbone_weights(keras_model, config, path_or_state_dict, verbose=0):
    """Initialises the backbone from a torchvision ImageNet classifier's state_dict
    (torchvision.models.resnet50 / resnet101 / resnext50_32x4d / resnext101_32x8d: conv1, bn1,
    layer1..layer4; its fc head is ignored), e.g. resnext50_32x4d-7cdf4587.pth.

    config.BACKBONE names the architecture; the backbone must be built as torchvision's:
    RESNET_SYMMETRIC_PADDING = True, BN_EPSILON = 1e-5 (and RESNET_STRIDE_ON_3X3 = True for a
    ResNet; a ResNeXt always strides its 3x3 convs). torchvision's weights expect its input
    normalisation: MEAN_PIXEL = 255 * (0.485, 0.456, 0.406), STD_PIXEL = 255 * (0.229, 0.224,
    0.225), as in mrcnn.presets.TorchvisionMaskRCNNConfig (a warning is logged otherwise).
    Nothing is assigned unless every trunk key is present with the right shape; otherwise
    raises TorchvisionWeightsError listing missing, unexpected and mismatched keys.
    Returns a weights.LoadReport (loaded: the backbone layers; missing_in_file: the model's
    other weighted layers; unused_in_file: the classifier head).
    """
    import logging

    from mrcnn.weights import LoadReport, layers_with_weights

    architecture = _architecture(config)
    _check_backbone_config(config)
    if config.STD_PIXEL is None:
        logging.getLogger(__name__).warning(
            "STD_PIXEL is None: torchvision's ImageNet weights expect pixels normalised by "
            "ImageNet's mean and std (see mrcnn.presets.TorchvisionMaskRCNNConfig)")
    sd = read_state_dict(path_or_state_dict)
    if any(k.startswith("backbone.body.") for k in sd):
        raise TorchvisionWeightsError("this is a detection checkpoint (backbone.body.* keys), "
                                      "not an ImageNet classifier: load it with "
                                      "load_torchvision_weights")
    classifier = [k for k in CLASSIFIER_KEYS if k in sd]
    sd = {k: v for k, v in sd.items() if k not in classifier}
    entries = trunk_key_map(architecture, prefix="")
    used, assignments = _assign_all(keras_model, sd, entries, set())
    loaded = [layer.name for layer, _ in assignments]
    report = LoadReport(loaded=loaded, excluded=[], mismatched=[],
                        missing_in_file=[layer.name for layer in layers_with_weights(keras_model)
                                         if layer.name not in set(loaded)],
                        unused_in_file=["fc"] if classifier else [])
    if verbose:
        print(f"Loaded {len(used)} torchvision tensors into {len(loaded)} backbone layers")
    return report


def _assign_all(keras_model, sd, entries, exclude):
    """Checks every (layer, keys, transform) entry against the state_dict, then assigns them
    all, or raises TorchvisionWeightsError listing every problem and assigns nothing.
    Returns (the keys used, [(layer, values)])."""
    used = set()
    missing, mismatched, assignments = [], [], []
    for layer_name, keys, transform in entries:
        if layer_name.split("/")[-1] in exclude:
            used.update(keys)
            continue
        absent = [k for k in keys if k not in sd]
        used.update(k for k in keys if k in sd)
        if absent:
            missing.extend(absent)
            continue
        try:
            layer = _get_layer(keras_model, layer_name)
        except ValueError as e:
            raise TorchvisionWeightsError(f"the model has no layer {layer_name!r} (for "
                                          f"{keys[0]}): build it with the torchvision "
                                          "preset and the checkpoint's BACKBONE") from e
        current = layer.get_weights()
        arrays = [sd[k].astype(np.float32) for k in keys]
        try:
            values = transform(*arrays)
        except (ValueError, IndexError):  # e.g. a bias whose length is not 4 * anchors
            values = None
        if values is None or len(current) != len(values) or \
                any(c.shape != v.shape for c, v in zip(current, values)):
            got = [tuple(a.shape) for a in arrays]
            mismatched.append(f"{', '.join(keys)} -> {layer_name}: checkpoint shapes {got} "
                              f"give {[tuple(v.shape) for v in values or []]}, model "
                              f"expects {[tuple(c.shape) for c in current]}")
            continue
        assignments.append((layer, values))
    unexpected = sorted(k for k in sd if k not in used
                        and not k.endswith("num_batches_tracked"))
    if missing or unexpected or mismatched:
        lines = ["the state_dict does not fit this model:"]
        if missing:
            lines.append(f"missing keys ({len(missing)}): {', '.join(missing)}")
        if unexpected:
            lines.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
        if mismatched:
            lines.append(f"shape mismatches ({len(mismatched)}):\n  " + "\n  ".join(mismatched))
        raise TorchvisionWeightsError("\n".join(lines))
    for layer, values in assignments:
        layer.set_weights(values)
    return used, assignments


def _wrong_switches(config, needed):
    return [f"{k} = {getattr(config, k)!r} (torchvision: {v!r})" for k, v in needed.items()
            if getattr(config, k) != v]


def _backbone_switches(config):
    """The backbone switches torchvision's trunks need (a ResNeXt always strides its 3x3)."""
    from mrcnn.backbone.resnext import RESNEXT_ARCHITECTURES

    needed = {"RESNET_SYMMETRIC_PADDING": True}
    if config.BACKBONE not in RESNEXT_ARCHITECTURES:
        needed["RESNET_STRIDE_ON_3X3"] = True
    return needed


def _check_backbone_config(config):
    wrong = _wrong_switches(config, dict(_backbone_switches(config), BN_EPSILON=1e-5))
    if wrong:
        raise TorchvisionWeightsError("config does not match torchvision's backbone: "
                                      + "; ".join(wrong))


# Only maskrcnn_resnet50_fpn_v2's state_dict has it (the second RPN conv).
V2_KEY = "rpn.head.conv.1.0.weight"
# The architecture switches the weights' shapes and meaning depend on, as the presets set them.
_WEIGHT_SWITCHES = ("HEADS_BATCH_NORM", "FPN_BATCH_NORM", "RPN_CONV_DEPTH", "BOX_HEAD",
                    "TOP_DOWN_PYRAMID_SIZE", "POOL_SIZE", "MASK_POOL_SIZE")


def _check_config(config, v2=False):
    """The config switches that torchvision's weights rely on: those of
    presets.TorchvisionMaskRCNNConfig, or TorchvisionMaskRCNNV2Config for v2."""
    preset = TorchvisionMaskRCNNV2Config if v2 else TorchvisionMaskRCNNConfig
    needed = dict(_backbone_switches(config),
                  **{k: getattr(preset, k) for k in _WEIGHT_SWITCHES})
    wrong = _wrong_switches(config, needed)
    if config.NUM_KEYPOINTS and config.KEYPOINT_POOL_SIZE != 14:
        wrong.append(f"KEYPOINT_POOL_SIZE = {config.KEYPOINT_POOL_SIZE!r} (torchvision: 14)")
    if wrong:
        raise TorchvisionWeightsError(
            f"config does not match the architecture of this torchvision "
            f"{'maskrcnn_resnet50_fpn_v2 ' if v2 else ''}checkpoint: " + "; ".join(wrong)
            + (" (use mrcnn.presets.TorchvisionMaskRCNNV2Config)" if v2 else
               " (use mrcnn.presets.TorchvisionMaskRCNNConfig or "
               "TorchvisionKeypointRCNNConfig)"))
