import subprocess
import sys

HEAVY = ["matplotlib", "pycocotools", "imgaug", "cv2"]


def _loaded_after(statement, names):
    code = f"import sys\n{statement}\nprint([m for m in {names!r} if m in sys.modules])\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return out.stdout.strip().splitlines()[-1]


def test_import_mrcnn_loads_no_heavy_optional_packages():
    assert _loaded_after("import mrcnn, mrcnn.config, mrcnn.dataset", HEAVY + ["keras"]) == "[]"


def test_model_import_adds_only_what_keras_itself_loads():
    # Keras 3 imports matplotlib and cv2 itself when they are installed
    # (keras.src.visualization); mrcnn adds neither pycocotools nor imgaug.
    names = ["pycocotools", "imgaug"]
    assert _loaded_after("from mrcnn import model, utils", names) == "[]"


def test_matterport_names_import():
    from mrcnn import model as modellib
    from mrcnn import utils

    for name in ["MaskRCNN", "log", "compute_backbone_shapes", "identity_block", "conv_block",
                 "resnet_graph", "apply_box_deltas_graph", "clip_boxes_graph", "log2_graph",
                 "overlaps_graph", "trim_zeros_graph", "batch_pack_graph", "norm_boxes_graph",
                 "denorm_boxes_graph", "parse_image_meta_graph", "BatchNorm", "ProposalLayer",
                 "PyramidROIAlign", "detection_targets_graph", "DetectionTargetLayer",
                 "refine_detections_graph", "DetectionLayer", "rpn_graph", "build_rpn_model",
                 "fpn_classifier_graph", "build_fpn_mask_graph", "smooth_l1_loss",
                 "rpn_class_loss_graph", "rpn_bbox_loss_graph", "mrcnn_class_loss_graph",
                 "mrcnn_bbox_loss_graph", "mrcnn_mask_loss_graph", "load_image_gt",
                 "build_detection_targets", "build_rpn_targets", "generate_random_rois",
                 "data_generator", "compose_image_meta", "parse_image_meta", "mold_image",
                 "unmold_image"]:
        assert hasattr(modellib, name), name
    for name in ["Dataset", "extract_bboxes", "compute_iou", "compute_overlaps",
                 "compute_overlaps_masks", "non_max_suppression", "apply_box_deltas",
                 "box_refinement_graph", "box_refinement", "resize_image", "resize_mask",
                 "minimize_mask", "expand_mask", "mold_mask", "unmold_mask", "generate_anchors",
                 "generate_pyramid_anchors", "trim_zeros", "compute_matches", "compute_ap",
                 "compute_ap_range", "compute_recall", "batch_slice", "download_trained_weights",
                 "norm_boxes", "denorm_boxes", "resize", "COCO_MODEL_URL"]:
        assert hasattr(utils, name), name


def test_matterport_visualize_names_import():
    from mrcnn import visualize

    for name in ["display_images", "random_colors", "apply_mask", "display_instances",
                 "display_differences", "draw_rois", "draw_box", "display_top_masks",
                 "plot_precision_recall", "plot_overlaps", "draw_boxes", "display_table",
                 "display_weight_stats"]:
        assert callable(getattr(visualize, name)), name


def test_importing_visualize_leaves_sys_path_alone():
    out = _loaded_after("before = list(sys.path)\nimport mrcnn.visualize\n"
                        "assert sys.path == before", ["IPython"])
    assert out == "[]"
