"""The balloon benchmark: train from random initialisation on matterport's 61 balloon photos,
evaluate on the 13 validation photos, and check issue 16's target.

    python benchmarks/balloon.py                                # the README's run
    python benchmarks/balloon.py -- --epochs 10                 # pass options to train.py

It runs samples/balloon/train.py (its defaults, --weights none, --dataset ../shared/data/balloon
unless given) in this process, samples the machine's load average every 10 s while it runs, and
writes <out>/benchmark.json (default results/balloon): the figures of metrics.json, wall clock,
seconds per training step, steps, CPU count and the load (mean and max of the 1-minute load
average), so that a run on a shared machine can be read as an upper bound. Target: mask mAP@0.5
>= 0.70 on the 13 val photos within 45 minutes of wall clock on the 2-core CI machine.
"""

import argparse
import json
import os
import platform
import sys
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

TARGET_MASK_MAP50 = 0.70
TARGET_SECONDS = 45 * 60


class LoadSampler(threading.Thread):
    """Samples os.getloadavg()[0] every `period` seconds until stop()."""

    def __init__(self, period=10.0):
        super().__init__(daemon=True)
        self.period = period
        self.samples = []
        self._stop_event = threading.Event()

    def run(self):
        while not self._stop_event.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop_event.wait(self.period)

    def stop(self):
        self._stop_event.set()
        self.join()
        return self.samples


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("train_args", nargs="*", help="options passed to samples/balloon/train.py "
                                                 "(after --)")
    args = p.parse_args(argv)
    from mrcnn.weights import SHARED_DATA_DIR
    from samples.balloon import train

    train_args = list(args.train_args)
    if "--dataset" not in train_args and "--dataset-format" not in train_args:
        train_args = ["--dataset", os.path.join(SHARED_DATA_DIR, "balloon")] + train_args
    if "--weights" not in train_args:
        train_args += ["--weights", "none"]
    sampler = LoadSampler()
    sampler.start()
    start = time.time()
    summary = train.main(train_args)
    seconds = time.time() - start
    load = sampler.stop()
    result = {
        "command": "python samples/balloon/train.py " + " ".join(train_args),
        "mask_mAP50": summary["mask_mAP50"],
        "bbox_mAP50": summary["bbox_mAP50"],
        "coco_mask_AP": summary["coco_mask_AP"],
        "coco_bbox_AP": summary["coco_bbox_AP"],
        "wall_clock_seconds": round(seconds, 1),
        "train_seconds": summary["train_seconds"],
        "steps": summary["steps"],
        "seconds_per_step": round(summary["train_seconds"] / max(summary["steps"], 1), 3),
        "images_per_step": summary["images_per_step"],
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "load_average_1min_mean": round(sum(load) / max(len(load), 1), 2),
        "load_average_1min_max": round(max(load, default=0.0), 2),
        "target": {"mask_mAP50": TARGET_MASK_MAP50, "seconds": TARGET_SECONDS},
        "target_met": bool(summary["mask_mAP50"] >= TARGET_MASK_MAP50
                           and seconds <= TARGET_SECONDS),
        "metrics": os.path.join(os.path.dirname(summary["curve"]), "metrics.json")
        if "curve" in summary else None,
    }
    out_dir = os.path.dirname(result["metrics"]) if result["metrics"] else \
        os.path.join(ROOT, "results", "balloon")
    path = os.path.join(out_dir, "benchmark.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    print(f"balloon benchmark: mask mAP@0.5 {result['mask_mAP50']:.3f} (target "
          f">= {TARGET_MASK_MAP50}), {seconds / 60:.1f} min (target <= {TARGET_SECONDS // 60}), "
          f"{result['seconds_per_step']} s/step x {result['steps']} steps, load average "
          f"{result['load_average_1min_mean']} (mean) / {result['load_average_1min_max']} (max) "
          f"on {os.cpu_count()} CPUs: target {'met' if result['target_met'] else 'NOT met'}")
    print(path)
    return result


if __name__ == "__main__":
    main()
