"""Video instance segmentation with tracked instances.

    from mrcnn.video import segment_video, Tracker
    out = segment_video(model, "clip.mp4", output="out.mp4", json_path="tracks.json")

    python -m mrcnn.video --config module:Config --weights W --input clip.mp4 --output out.mp4 \\
        [--json tracks.json] [--first-frame-masks masks.png] [--style annotate|splash]

Modules: tracking (the Hungarian IoU tracker, pure NumPy), io (cv2 frames in and out, RGB),
drawing (annotated and splash styles, track colours), results (YouTube-VIS JSON, first-frame
masks), pipeline (the resumable run), __main__ (the CLI). Importing this package loads neither
TensorFlow nor cv2.
"""

from mrcnn.video.drawing import annotate_frame, color_splash, render, track_color
from mrcnn.video.io import VideoWriter, read_frames, video_info
from mrcnn.video.pipeline import segment_video
from mrcnn.video.results import TrackResults, decode_mask, encode_mask, load_first_frame_masks
from mrcnn.video.tracking import Tracker

__all__ = ["segment_video", "Tracker", "TrackResults", "track_color", "color_splash",
           "annotate_frame", "render", "read_frames", "video_info", "VideoWriter",
           "encode_mask", "decode_mask", "load_first_frame_masks"]
