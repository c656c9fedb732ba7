"""Region Proposal Network head, one model shared by every pyramid level (rpn_model)."""

import keras
from keras import layers as KL

from mrcnn.layers.tiled_conv import TiledConv2D

__all__ = ["rpn_graph", "build_rpn_model"]


def rpn_graph(feature_map, anchors_per_location, anchor_stride, conv_channels=512, tiles=1,
              conv_depth=1):
    """RPN outputs for one feature map [batch, h, w, depth].

    conv_channels: width of the shared 3x3 conv (Config.RPN_CONV_CHANNELS). tiles > 1: that
    conv runs on tiles x tiles tiles of the map (TiledConv2D, stride 1 only; same weights).
    conv_depth: how many 3x3 conv + ReLU layers (Config.RPN_CONV_DEPTH; torchvision's v2
    RPNHead has 2): rpn_conv_shared, then rpn_conv_shared2, ... at stride 1.

    Returns rpn_class_logits [batch, anchors, 2], rpn_probs [batch, anchors, 2] and
    rpn_bbox [batch, anchors, (dy, dx, log(dh), log(dw))].
    """
    shared = feature_map
    for i in range(1, conv_depth + 1):
        shared = TiledConv2D(conv_channels, (3, 3), padding="same", activation="relu",
                             strides=anchor_stride if i == 1 else 1, tiles=tiles,
                             name="rpn_conv_shared" + (str(i) if i > 1 else ""))(shared)
    x = KL.Conv2D(2 * anchors_per_location, (1, 1), padding="valid", activation="linear",
                  name="rpn_class_raw")(shared)
    rpn_class_logits = KL.Reshape((-1, 2))(x)
    rpn_probs = KL.Activation("softmax", dtype="float32", name="rpn_class_xxx")(rpn_class_logits)
    x = KL.Conv2D(anchors_per_location * 4, (1, 1), padding="valid", activation="linear",
                  name="rpn_bbox_pred")(shared)
    rpn_bbox = KL.Reshape((-1, 4))(x)
    return [rpn_class_logits, rpn_probs, rpn_bbox]


def build_rpn_model(anchor_stride, anchors_per_location, depth, conv_channels=512, tiles=1,
                    conv_depth=1):
    """The shared RPN as a keras.Model named rpn_model (input input_rpn_feature_map)."""
    input_feature_map = keras.Input(shape=[None, None, depth], name="input_rpn_feature_map")
    outputs = rpn_graph(input_feature_map, anchors_per_location, anchor_stride, conv_channels,
                        tiles, conv_depth)
    return keras.Model([input_feature_map], outputs, name="rpn_model")
