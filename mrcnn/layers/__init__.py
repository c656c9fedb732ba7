"""Custom Keras layers of Mask R-CNN. CUSTOM_OBJECTS maps their names for deserialization."""

from mrcnn.layers.detection import DetectionLayer
from mrcnn.layers.detection_target import DetectionTargetLayer
from mrcnn.layers.graph_utils import (
    BatchNorm,
    NormBoxes,
    PyramidAnchors,
    TimeDistributed,
    ZeroMasks,
)
from mrcnn.layers.grouped_conv import GroupedConv2D
from mrcnn.layers.keypoint_target import KeypointTargetLayer
from mrcnn.layers.mask_scoring import ClassMaskPool, MaskIoUTargetLayer, MaskScores
from mrcnn.layers.proposal import ProposalLayer
from mrcnn.layers.roi_align import PyramidROIAlign

CUSTOM_OBJECTS = {cls.__name__: cls for cls in (
    DetectionLayer, DetectionTargetLayer, BatchNorm, NormBoxes, PyramidAnchors, TimeDistributed,
    ProposalLayer, PyramidROIAlign, KeypointTargetLayer, ZeroMasks, GroupedConv2D,
    MaskIoUTargetLayer, ClassMaskPool, MaskScores)}

__all__ = ["CUSTOM_OBJECTS"] + sorted(CUSTOM_OBJECTS)
