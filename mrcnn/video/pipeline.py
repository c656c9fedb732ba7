"""The video run: decode, detect in batches, track, draw, encode; resumable.

Frames are streamed: at most one batch of frames plus `min_hits - 1` held-back frames are in
memory at a time.

Back-filling: a track is reported only once confirmed (`min_hits` consecutive matches), and
then from its first frame on: frames are written `min_hits - 1` frames late, so the video and
the JSON both show a confirmed track in the frames where it was still tentative. Tracks that
are never confirmed (flickering false positives) appear nowhere. A confirmed track's frames
without a detection (while it coasts through an occlusion) have no mask: null in the JSON,
nothing drawn.

Resuming: each batch's detections are appended to `<json or video path>.partial.jsonl` (one
line per frame, the batch written and fsync'ed at once, in batch_inference's record format:
"file_name" is "<video file name>#<frame index>", "results" COCO results with RLE masks and
category_id = the model's class id). A
rerun reads it (mrcnn.batch_inference's reader: lines cut off by a kill are ignored), skips
detection for every batch all of whose frames are there, and redoes the others with the same
batch boundaries, so its inputs to the model are the same as an uninterrupted run's. Tracking
and drawing are cheap and rerun over the whole video, so the outputs are the same as an
uninterrupted run's. The partial file is removed when the outputs are written. A partial file
whose frame sizes differ from the video's (left by another video) is refused with an error.
"""

import collections
import json
import os
import time

import numpy as np

from mrcnn.video.drawing import STYLES, mask_crops, render
from mrcnn.video.io import VideoWriter, batched, read_frames, video_info
from mrcnn.video.results import (
    TrackResults,
    encode_masks,
    load_first_frame_masks,
    select_tracks,
)
from mrcnn.video.tracking import Tracker

__all__ = ["segment_video", "detections_from_record"]


def detections_to_record(key, index, frame, det, crops=None):
    """A detect() result -> (partial-file record with COCO results, their RLEs).

    The record has batch_inference's fields (file_name, height, width, results as
    evaluation.detections_to_coco writes them: image_id, category_id = the class id, bbox
    [x, y, w, h], score, segmentation RLE); the masks are encoded in one call."""
    rles = encode_masks(det["masks"], crops)
    results = [{"image_id": int(index), "category_id": int(c),
                "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                "score": float(s), "segmentation": rle}
               for (y1, x1, y2, x2), c, s, rle in zip(det["rois"], det["class_ids"],
                                                     det["scores"], rles)]
    record = {"file_name": key, "height": int(frame.shape[0]), "width": int(frame.shape[1]),
              "results": results}
    return record, rles


def detections_from_record(record):
    """A partial-file record -> a detect()-style dict (rois, class_ids, scores, masks)."""
    from mrcnn.video.results import decode_mask

    h, w = record["height"], record["width"]
    results = record["results"]
    rois = np.array([[r["bbox"][1], r["bbox"][0], r["bbox"][1] + r["bbox"][3],
                      r["bbox"][0] + r["bbox"][2]] for r in results],
                    dtype=np.float64).reshape(-1, 4)
    masks = np.zeros((h, w, len(results)), dtype=bool)
    for k, r in enumerate(results):
        masks[..., k] = decode_mask(r["segmentation"])
    return {"rois": np.round(rois).astype(np.int32),
            "class_ids": np.array([r["category_id"] for r in results], dtype=np.int32),
            "scores": np.array([r["score"] for r in results], dtype=np.float32),
            "masks": masks}


def _prepare_partial(path):
    from mrcnn.batch_inference import _read_partial

    done = _read_partial(path)
    if os.path.isfile(path):
        # Keep only complete records, so that new lines never follow a cut-off one.
        with open(path + ".tmp", "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in done.values())
        os.replace(path + ".tmp", path)
    return done


def segment_video(model, input_path, output=None, json_path=None, first_frame_masks=None,
                  style="annotate", batch_size=None, class_names=None, category_of=None,
                  video_id=1, iou_threshold=0.3, max_age=3, min_hits=3, fourcc="mp4v",
                  stop_after=None, verbose=1):
    """Video instance segmentation with tracked instances (see the module docstring).

    model: an inference MaskRCNN (anything with detect(list of RGB frames) -> detect()
    results). output: the video to write ("annotate" style: masks in each track's colour with
    "id class" captions; "splash": grayscale with the instances in colour); json_path: the
    YouTube-VIS results (mrcnn.video.results). first_frame_masks: semi-supervised mode, a label
    PNG path, [H, W] label array or [H, W, K] bool masks: only the tracks those objects are
    in the first frame are reported. batch_size: frames per detect() call (default the
    config's BATCH_SIZE). class_names: list indexed by class id, for captions.
    category_of: class id -> JSON category_id. iou_threshold, max_age, min_hits: the Tracker's.
    stop_after: detect at most this many new frames, then return None without writing the
    JSON (for testing resumption).

    Returns a dict: frames, video, json, tracks (the YouTube-VIS entries), seconds (wall
    clock), detect_seconds (inside detect()), detected_frames (not taken from the partial file).
    """
    if output is None and json_path is None:
        raise ValueError("give an output video path, a json_path, or both")
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; expected one of {STYLES}")
    if batch_size is None:
        batch_size = getattr(getattr(model, "config", None), "BATCH_SIZE", 1)
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    given = None
    if first_frame_masks is not None:
        given = load_first_frame_masks(first_frame_masks)
    start = time.perf_counter()
    info = video_info(input_path)
    if given is not None and given[0].shape[:2] != (info.height, info.width):
        raise ValueError(f"first-frame masks are {given[0].shape[1]}x{given[0].shape[0]}, the "
                         f"video {input_path} is {info.width}x{info.height}")
    tracker = Tracker(iou_threshold=iou_threshold, max_age=max_age, min_hits=min_hits)
    results = TrackResults(video_id, category_of)
    partial = (json_path or output) + ".partial.jsonl"
    done = _prepare_partial(partial)
    name = os.path.basename(input_path)
    writer = VideoWriter(output, info.fps, (info.width, info.height), fourcc) if output else None
    pending = collections.deque()
    state = {"selection": None, "frames": 0}
    stats = {"detect_seconds": 0.0, "detected_frames": 0}

    def emit(index, frame, det, crops, rles, ids):
        keep = [k for k, t in enumerate(ids) if tracker.is_confirmed(t)]
        if given is not None:
            if state["selection"] is None:
                state["selection"] = select_tracks(given[0], given[1], ids[keep],
                                                   det["masks"][..., keep])
                results.object_of_track = dict(state["selection"])
            keep = [k for k in keep if int(ids[k]) in state["selection"]]
        results.add(index, ids[keep], det["class_ids"][keep], det["scores"][keep],
                    [rles[k] for k in keep])
        if writer is not None:
            labels = [class_names[c] if class_names is not None else str(c)
                      for c in det["class_ids"][keep]]
            writer.write(render(style, frame, det["rois"][keep], [crops[k] for k in keep],
                                ids[keep], labels))

    bar = None
    if verbose:
        import keras

        bar = keras.utils.Progbar(info.frame_count or None, unit_name="frame",
                                  stateful_metrics=["fps"])
    try:
        with open(partial, "a") as f:
            first = 0
            for frames in batched(read_frames(input_path), int(batch_size)):
                keys = [f"{name}#{first + j}" for j in range(len(frames))]
                if all(k in done for k in keys):
                    for k, frame in zip(keys, frames):
                        if (done[k]["height"], done[k]["width"]) != frame.shape[:2]:
                            raise ValueError(
                                f"{partial} has a {done[k]['width']}x{done[k]['height']} "
                                f"frame {k}, but {input_path} is {frame.shape[1]}x"
                                f"{frame.shape[0]}: it belongs to another video; delete it")
                    dets = [detections_from_record(done[k]) for k in keys]
                    crops = [mask_crops(d["masks"]) for d in dets]
                    rles = [[r["segmentation"] for r in done[k]["results"]] for k in keys]
                else:
                    if stop_after is not None and stats["detected_frames"] >= stop_after:
                        return None
                    t = time.perf_counter()
                    dets = model.detect(frames)
                    stats["detect_seconds"] += time.perf_counter() - t
                    stats["detected_frames"] += len(frames)
                    crops = [mask_crops(d["masks"]) for d in dets]
                    records, rles = zip(*(
                        detections_to_record(key, first + j, frame, det, c)
                        for j, (key, frame, det, c) in enumerate(zip(keys, frames, dets, crops))))
                    f.write("".join(json.dumps(r) + "\n" for r in records))
                    f.flush()
                    os.fsync(f.fileno())
                for j, (frame, det) in enumerate(zip(frames, dets)):
                    tight = (np.array([c[0] for c in crops[j]], dtype=np.int64).reshape(-1, 4),
                             np.array([c[1] is not None for c in crops[j]], dtype=bool))
                    ids = tracker.update(det["rois"], det["class_ids"], det["masks"],
                                         tight=tight)
                    pending.append((first + j, frame, det, crops[j], rles[j], ids))
                    while len(pending) >= tracker.min_hits:
                        emit(*pending.popleft())
                first += len(frames)
                if bar is not None:
                    elapsed = time.perf_counter() - start
                    bar.update(first, values=[("fps", first / max(elapsed, 1e-9))])
            while pending:
                emit(*pending.popleft())
            state["frames"] = first
    finally:
        if writer is not None:
            writer.close()
    if state["frames"] == 0:
        raise ValueError(f"no frame could be read from {input_path}")
    results.set_frame_count(state["frames"])
    if json_path:
        results.save(json_path)
    os.remove(partial)
    return {"frames": state["frames"], "video": output, "json": json_path,
            "tracks": results.entries(), "seconds": time.perf_counter() - start, **stats}
