"""Video benchmark: frames per second end to end (decode, detect, track, draw, encode, JSON)
vs detect() alone on the same frames, at 512 px.

    python benchmarks/video.py                        # mini backbone, 16 frames, batch 2
    python benchmarks/video.py --backbone resnet50 --frames 20
    python benchmarks/video.py --strip docs/video_strip.png   # the README's frame strip

A clip of moving shapes is generated (--size x --size, mp4v). The model has random weights
with DETECTION_MIN_CONFIDENCE = 0, so every frame has DETECTION_MAX_INSTANCES detections with
masks: the tracker and the writer get a full load. Each measurement runs --repeats times
(alternating) after one untimed warm-up batch; the fastest of each is reported. Prints a JSON
line: fps of both, the overhead of everything else relative to detection (end-to-end time /
detect-only time - 1) and, from inside the end-to-end run, the seconds per frame spent outside
detect() and their ratio to the seconds inside it, and the same comparison in CPU seconds of
the process (stable when other processes share the machine).
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


def make_strip(path, frames=(2, 10, 15, 17, 22, 30)):
    """The README's frame strip: a synthetic clip (two squares crossing, a circle passing
    behind a gray pillar, a triangle) annotated by segment_video. No trained model: the
    detections are the tests' ground-truth-derived ones (jittered masks, one dropped detection,
    one false positive), so the picture shows tracking and drawing, not detection quality."""
    import cv2
    import numpy as np

    from mrcnn.video import read_frames, segment_video
    from tests.reference.video_scene import Obj, detections, scene

    objects = [Obj(1, 1, (230, 80, 80), 26, (50, 30), (0, 6)),
               Obj(2, 1, (80, 200, 230), 26, (50, 210), (0, -6)),
               Obj(3, 2, (240, 220, 90), 20, (120, 20), (0, 5)),
               Obj(4, 3, (160, 120, 230), 30, (125, 200), (-1, -1))]
    shape, n = (160, 240), 36
    images, gts, fulls = scene(objects, n, shape, occluders=[(90, 100, 160, 114)])
    results, _ = detections(objects, gts, fulls, seed=0, drop={(12, 4)},
                            false_positives=[(25, 2, (10, 200, 30, 220))])
    tmp = tempfile.mkdtemp(prefix="mrcnn_video_strip_")
    clip = os.path.join(tmp, "clip.avi")
    from mrcnn.video.io import VideoWriter

    with VideoWriter(clip, 12.0, (shape[1], shape[0]), fourcc="MJPG") as w:
        for image in images:
            w.write(image)

    class GroundTruthModel:
        calls = 0

        def detect(self, batch):
            out = results[self.calls:self.calls + len(batch)]
            self.calls += len(batch)
            return out

    out_video = os.path.join(tmp, "annotated.avi")
    segment_video(GroundTruthModel(), clip, output=out_video, fourcc="MJPG",
                  class_names=["BG", "square", "circle", "triangle"], verbose=0)
    drawn = list(read_frames(out_video))
    tiles = []
    for t in frames:
        tile = drawn[t].copy()
        cv2.putText(tile, f"frame {t}", (4, shape[0] - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (255, 255, 255), 1, cv2.LINE_AA)
        tiles += [tile, np.full((shape[0], 4, 3), 255, np.uint8)]
    strip = np.concatenate(tiles[:-1], axis=1)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    cv2.imwrite(path, strip[..., ::-1])
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backbone", default="mini", help="mini (default), resnet50, resnet101")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--strip", help="only write the README's frame strip to this PNG")
    args = p.parse_args(argv)
    if args.strip:
        print(make_strip(args.strip))
        return args.strip

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

    detect_times, e2e_times, inner, inside, detect_cpu, e2e_cpu = [], [], [], [], [], []
    for r in range(args.repeats):
        c = time.process_time()
        t = time.perf_counter()
        detections = 0
        for batch in batched(frames, args.batch_size):
            detections += sum(len(d["class_ids"]) for d in model.detect(batch))
        detect_times.append(time.perf_counter() - t)
        detect_cpu.append(time.process_time() - c)
        c = time.process_time()
        t = time.perf_counter()
        out = segment_video(model, clip, output=os.path.join(tmp, f"out{r}.mp4"),
                            json_path=os.path.join(tmp, f"tracks{r}.json"),
                            batch_size=args.batch_size, verbose=0)
        e2e_times.append(time.perf_counter() - t)
        e2e_cpu.append(time.process_time() - c)
        inner.append(out["seconds"] - out["detect_seconds"])
        inside.append(inner[-1] / out["detect_seconds"])
    detect_s, e2e_s = min(detect_times), min(e2e_times)
    result = {
        "backbone": args.backbone, "size": args.size, "frames": args.frames,
        "batch_size": args.batch_size, "detections_per_frame": detections / args.frames,
        "tracks": len(out["tracks"]),
        "detect_only_fps": round(args.frames / detect_s, 3),
        "end_to_end_fps": round(args.frames / e2e_s, 3),
        "overhead_vs_detect": round(e2e_s / detect_s - 1, 4),
        "non_detect_seconds_per_frame": round(min(inner) / args.frames, 4),
        # Within one end-to-end run: time outside detect() / time inside it. Less exposed to
        # other processes than comparing two separate runs.
        "overhead_within_run": round(min(inside), 4),
        # CPU seconds of this process (all threads): barely affected by other processes
        # sharing the machine, unlike wall clock.
        "overhead_cpu_time": round(min(e2e_cpu) / min(detect_cpu) - 1, 4),
        "detect_cpu_seconds": [round(x, 2) for x in detect_cpu],
        "end_to_end_cpu_seconds": [round(x, 2) for x in e2e_cpu],
        "detect_seconds": [round(x, 2) for x in detect_times],
        "end_to_end_seconds": [round(x, 2) for x in e2e_times],
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
