"""Feature Pyramid Network top-down path (fpn_* layer names)."""

from keras import layers as KL

from mrcnn.layers.graph_utils import BatchNorm
from mrcnn.layers.tiled_conv import TiledConv2D

__all__ = ["fpn_graph"]


def fpn_graph(C2, C3, C4, C5, pyramid_size=256, tiles=1, batch_norm=False, train_bn=True,
              bn_epsilon=1e-3):
    """P2..P6 from C2..C5.

    C2..C5: backbone maps with strides 4, 8, 16, 32. Returns [P2, P3, P4, P5, P6], each with
    pyramid_size channels; P6 is P5 subsampled by 2 (used by the RPN only). tiles > 1: the 3x3
    output convs run on tiles x tiles tiles of each map (TiledConv2D; same weights and names).
    batch_norm: every conv is bias-free and followed by BatchNorm (its name + "_bn", epsilon
    bn_epsilon, frozen unless train_bn), as torchvision's FPN with norm_layer (Mask R-CNN v2;
    Config.FPN_BATCH_NORM); False: matterport's biased convs.
    """
    def normed(conv, x):
        if not batch_norm:
            return conv(x)
        return BatchNorm(frozen=not train_bn, epsilon=bn_epsilon, name=conv.name + "_bn")(
            conv(x))

    def lateral(c, level):
        return normed(KL.Conv2D(pyramid_size, (1, 1), use_bias=not batch_norm,
                                name=f"fpn_c{level}p{level}"), c)

    P5 = lateral(C5, 5)
    P4 = KL.Add(name="fpn_p4add")([KL.UpSampling2D(size=(2, 2), name="fpn_p5upsampled")(P5),
                                   lateral(C4, 4)])
    P3 = KL.Add(name="fpn_p3add")([KL.UpSampling2D(size=(2, 2), name="fpn_p4upsampled")(P4),
                                   lateral(C3, 3)])
    P2 = KL.Add(name="fpn_p2add")([KL.UpSampling2D(size=(2, 2), name="fpn_p3upsampled")(P3),
                                   lateral(C2, 2)])
    P2, P3, P4, P5 = (normed(TiledConv2D(pyramid_size, (3, 3), padding="SAME",
                                         use_bias=not batch_norm, tiles=tiles,
                                         name=f"fpn_p{level}"), p)
                      for level, p in zip(range(2, 6), (P2, P3, P4, P5)))
    P6 = KL.MaxPooling2D(pool_size=(1, 1), strides=2, name="fpn_p6")(P5)
    return [P2, P3, P4, P5, P6]
