"""python -m mrcnn.video: tracked instance segmentation of a video file (see mrcnn.video)."""

import argparse
import json

from mrcnn.video.drawing import STYLES


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m mrcnn.video",
        description="Detect, track and draw instances in a video; resumable (a rerun after an "
                    "interruption skips the frames already detected).")
    p.add_argument("--config", required=True, help="module:ConfigClass (an inference config)")
    p.add_argument("--weights", required=True, help="weights file (h5 or .weights.h5)")
    p.add_argument("--input", required=True, help="the video to read")
    p.add_argument("--output", help="the video to write (mp4v); optional when --json is given")
    p.add_argument("--json", help="YouTube-VIS results per track")
    p.add_argument("--first-frame-masks", help="label PNG of the first frame (0 background, "
                   "k = object k): follow only those objects")
    p.add_argument("--style", choices=STYLES, default="annotate")
    p.add_argument("--batch-size", type=int, default=None,
                   help="frames per detect() call (default: the config's BATCH_SIZE)")
    p.add_argument("--max-age", type=int, default=3,
                   help="frames a track survives without a detection (default 3)")
    p.add_argument("--min-hits", type=int, default=3,
                   help="consecutive detections before a track is reported (default 3)")
    p.add_argument("--iou-threshold", type=float, default=0.3,
                   help="minimum mask IoU to link a detection to a track (default 0.3)")
    p.add_argument("--class-names", help="comma-separated names by class id, starting with "
                   "the background (e.g. BG,square,circle,triangle); default: the ids")
    p.add_argument("--video-id", type=int, default=1, help="video_id in the JSON")
    p.add_argument("--logs", default="logs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if not args.output and not args.json:
        p.error("give --output, --json, or both")
    return args


def main(argv=None):
    args = parse_args(argv)
    from mrcnn import model as modellib
    from mrcnn.batch_inference import _load_config
    from mrcnn.video.pipeline import segment_video

    config = _load_config(args.config)
    model = modellib.MaskRCNN("inference", config, args.logs)
    model.load_weights(args.weights, by_name=True)
    names = args.class_names.split(",") if args.class_names else None
    if names is not None and len(names) != config.NUM_CLASSES:
        raise SystemExit(f"--class-names has {len(names)} names, the config has "
                         f"NUM_CLASSES = {config.NUM_CLASSES}")
    out = segment_video(model, args.input, output=args.output, json_path=args.json,
                        first_frame_masks=args.first_frame_masks, style=args.style,
                        batch_size=args.batch_size, class_names=names,
                        video_id=args.video_id, iou_threshold=args.iou_threshold,
                        max_age=args.max_age, min_hits=args.min_hits,
                        verbose=0 if args.quiet else 1)
    summary = {k: out[k] for k in ("frames", "video", "json", "seconds", "detect_seconds",
                                   "detected_frames")}
    summary["tracks"] = len(out["tracks"])
    print(json.dumps(summary))
    return out


if __name__ == "__main__":
    main()
