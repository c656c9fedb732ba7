"""Video benchmark: frames per second end to end (decode, detect, track, draw, encode, JSON)
vs detect() alone on the same frames, at 512 px.

    python benchmarks/video.py                        # mini backbone, 40 frames, batch 2
    python benchmarks/video.py --backbone resnet50 --frames 20

A clip of moving shapes is generated (--size x --size, mp4v). The model has random weights
with DETECTION_MIN_CONFIDENCE = 0, so every frame has DETECTION_MAX_INSTANCES detections with
masks: the tracker and the writer get a full load. Each measurement runs --repeats times
(alternating) after one untimed warm-up batch; the fastest of each is reported. Prints a JSON
line: fps of both, and the overhead of everything else relative to detection.
"""

import argparse
import json
import os
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def make_clip(path, frames, size, fps=25.0):
    """Moving coloured squares and circles on a dark background."""
    import numpy as np

    from mrcnn.video.io import VideoWriter

    rng = np.random.default_rng(0)
    n = 6
    pos = rng.uniform(0.2 * size, 0.8 * size, (n, 2))
    vel = rng.uniform(-6, 6, (n, 2))
    radius = rng.uniform(0.04 * size, 0.1 * size, n)
    colors = rng.integers(60, 256, (n, 3))
    yy, xx = np.mgrid[:size, :size]
    with VideoWriter(path, fps, (size, size)) as w:
        for t in range(frames):
            image = np.full((size, size, 3), 30, np.uint8)
            for k in range(n):
                cy, cx = np.clip(pos[k] + t * vel[k], radius[k], size - radius[k])
                if k % 2:
                    m = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius[k] ** 2
                else:
                    m = (np.abs(yy - cy) <= radius[k]) & (np.abs(xx - cx) <= radius[k])
                image[m] = colors[k]
            w.write(image)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backbone", default="mini", help="mini (default), resnet50, resnet101")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args(argv)

    from mrcnn import model as modellib
    from mrcnn.video import read_frames, segment_video
    from mrcnn.video.io import batched
    from samples.shapes.train import BACKBONES, ShapesInferenceConfig

    config = type("VideoBenchConfig", (ShapesInferenceConfig,), {
        **BACKBONES.get(args.backbone, {"BACKBONE": args.backbone}),
        "IMAGE_MIN_DIM": args.size, "IMAGE_MAX_DIM": args.size,
        "IMAGES_PER_GPU": args.batch_size, "DETECTION_MIN_CONFIDENCE": 0.0})()
    tmp = tempfile.mkdtemp(prefix="mrcnn_video_bench_")
    clip = os.path.join(tmp, "clip.mp4")
    make_clip(clip, args.frames, args.size)
    model = modellib.MaskRCNN("inference", config, tmp)
    frames = list(read_frames(clip))
    model.detect(frames[:args.batch_size])  # trace the graph once

    detect_times, e2e_times, inner = [], [], []
    for r in range(args.repeats):
        t = time.perf_counter()
        detections = 0
        for batch in batched(frames, args.batch_size):
            detections += sum(len(d["class_ids"]) for d in model.detect(batch))
        detect_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        out = segment_video(model, clip, output=os.path.join(tmp, f"out{r}.mp4"),
                            json_path=os.path.join(tmp, f"tracks{r}.json"),
                            batch_size=args.batch_size, verbose=0)
        e2e_times.append(time.perf_counter() - t)
        inner.append(out["seconds"] - out["detect_seconds"])
    detect_s, e2e_s = min(detect_times), min(e2e_times)
    result = {
        "backbone": args.backbone, "size": args.size, "frames": args.frames,
        "batch_size": args.batch_size, "detections_per_frame": detections / args.frames,
        "tracks": len(out["tracks"]),
        "detect_only_fps": round(args.frames / detect_s, 3),
        "end_to_end_fps": round(args.frames / e2e_s, 3),
        "overhead_vs_detect": round(e2e_s / detect_s - 1, 4),
        "non_detect_seconds_per_frame": round(min(inner) / args.frames, 4),
        "detect_seconds": [round(x, 2) for x in detect_times],
        "end_to_end_seconds": [round(x, 2) for x in e2e_times],
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
