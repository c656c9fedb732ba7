"""Feature Pyramid Network top-down path (fpn_* layer names)."""

from keras import layers as KL

from mrcnn.layers.tiled_conv import TiledConv2D

__all__ = ["fpn_graph"]


def fpn_graph(C2, C3, C4, C5, pyramid_size=256, tiles=1):
    """P2..P6 from C2..C5.

    C2..C5: backbone maps with strides 4, 8, 16, 32. Returns [P2, P3, P4, P5, P6], each with
    pyramid_size channels; P6 is P5 subsampled by 2 (used by the RPN only). tiles > 1: the 3x3
    output convs run on tiles x tiles tiles of each map (TiledConv2D; same weights and names).
    """
    P5 = KL.Conv2D(pyramid_size, (1, 1), name="fpn_c5p5")(C5)
    P4 = KL.Add(name="fpn_p4add")([
        KL.UpSampling2D(size=(2, 2), name="fpn_p5upsampled")(P5),
        KL.Conv2D(pyramid_size, (1, 1), name="fpn_c4p4")(C4)])
    P3 = KL.Add(name="fpn_p3add")([
        KL.UpSampling2D(size=(2, 2), name="fpn_p4upsampled")(P4),
        KL.Conv2D(pyramid_size, (1, 1), name="fpn_c3p3")(C3)])
    P2 = KL.Add(name="fpn_p2add")([
        KL.UpSampling2D(size=(2, 2), name="fpn_p3upsampled")(P3),
        KL.Conv2D(pyramid_size, (1, 1), name="fpn_c2p2")(C2)])
    P2 = TiledConv2D(pyramid_size, (3, 3), padding="SAME", tiles=tiles, name="fpn_p2")(P2)
    P3 = TiledConv2D(pyramid_size, (3, 3), padding="SAME", tiles=tiles, name="fpn_p3")(P3)
    P4 = TiledConv2D(pyramid_size, (3, 3), padding="SAME", tiles=tiles, name="fpn_p4")(P4)
    P5 = TiledConv2D(pyramid_size, (3, 3), padding="SAME", tiles=tiles, name="fpn_p5")(P5)
    P6 = KL.MaxPooling2D(pool_size=(1, 1), strides=2, name="fpn_p6")(P5)
    return [P2, P3, P4, P5, P6]
