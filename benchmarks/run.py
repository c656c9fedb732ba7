"""Benchmarks: inference and training speed and peak memory, optionally against torchvision.

    python benchmarks/run.py                     # everything (long on a CPU)
    python benchmarks/run.py --quick             # resnet50, 512 px, batch 1 only
    python benchmarks/run.py --only inference --backbones resnet50 --sizes 1024 --batches 1

Each case runs in its own process (so peak resident memory is per case) with the given
thread count; figures are the median of --runs timed runs after --warmup untimed ones.
Weights are random: with DETECTION_MIN_CONFIDENCE = 0 the work per image does not depend on
them (100 detections are always kept). torchvision's maskrcnn_resnet50_fpn runs too when torch
is installed (it is not a dependency of mrcnn), and the ratio ours / theirs is printed.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def _peak_rss_mib():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _timed(fn, warmup, runs):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _config(backbone, size, batch, **extra):
    from mrcnn.config import Config

    attrs = dict(NAME="bench", NUM_CLASSES=81, BACKBONE=backbone, IMAGE_MIN_DIM=size,
                 IMAGE_MAX_DIM=size, IMAGES_PER_GPU=batch, DETECTION_MIN_CONFIDENCE=0.0,
                 DETECTION_MAX_INSTANCES=100)
    attrs.update(extra)
    return type("BenchConfig", (Config,), attrs)()


def case_inference(backbone, size, batch, warmup, runs):
    import numpy as np

    from mrcnn import model as modellib

    model = modellib.MaskRCNN("inference", _config(backbone, size, batch), "/tmp/mrcnn-bench")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(batch)]
    seconds = _timed(lambda: model.detect(images), warmup, runs)
    return {"seconds_per_image": seconds / batch, "images_per_second": batch / seconds,
            "tracing_count": model._predict_fn.experimental_get_tracing_count()}


def case_training(backbone, size, batch, layers, warmup, runs):

    from mrcnn import model as modellib
    from mrcnn.data_generator import DataGenerator
    from samples.shapes.shapes import ShapesDataset

    config = _config(backbone, size, batch, NUM_CLASSES=4, STEPS_PER_EPOCH=1)
    dataset = ShapesDataset()
    dataset.load_shapes(16, size, size, seed=0)
    dataset.prepare()
    gen = DataGenerator(dataset, config, batch_size=batch, steps=1000, seed=0)
    model = modellib.MaskRCNN("training", config, "/tmp/mrcnn-bench")
    model.set_trainable(layers, verbose=0)
    trainer = model.compile(0.001, 0.9)
    batches = [gen[i][0] for i in range(warmup + runs)]
    load = _timed(lambda: gen[0], 1, runs)
    import tensorflow as tf

    step = tf.function(trainer.train_step, reduce_retracing=True)
    it = iter(batches)
    seconds = _timed(lambda: step((next(it),)), warmup, runs)
    return {"seconds_per_step": seconds, "loader_seconds_per_batch": load,
            "loader_share": load / (load + seconds)}


def case_torchvision(size, batch, warmup, runs):
    import torch
    import torchvision

    model = torchvision.models.detection.maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, box_score_thresh=0.0, box_detections_per_img=100,
        min_size=size, max_size=size)
    model.eval()
    images = [torch.rand(3, size, size) for _ in range(batch)]

    def run():
        with torch.no_grad():
            model(images)

    seconds = _timed(run, warmup, runs)
    return {"seconds_per_image": seconds / batch, "images_per_second": batch / seconds}


def _child(args):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    spec = json.loads(args.child)
    kind = spec.pop("kind")
    if kind == "torchvision":
        import torch

        torch.set_num_threads(args.threads)
        result = case_torchvision(warmup=args.warmup, runs=args.runs, **spec)
    elif kind == "inference":
        result = case_inference(warmup=args.warmup, runs=args.runs, **spec)
    else:
        result = case_training(warmup=args.warmup, runs=args.runs, **spec)
    result["peak_rss_mib"] = _peak_rss_mib()
    print("RESULT " + json.dumps(result))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=["inference", "training"], default=None)
    p.add_argument("--backbones", nargs="+", default=["resnet50", "resnet101"])
    p.add_argument("--sizes", nargs="+", type=int, default=[1024, 512])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 4])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return _child(args)
    if args.quick:
        args.backbones, args.sizes, args.batches, args.runs = ["resnet50"], [512], [1], 3
    cases = []
    if args.only in (None, "inference"):
        for backbone in args.backbones:
            for size in args.sizes:
                for batch in args.batches:
                    cases.append({"kind": "inference", "backbone": backbone, "size": size,
                                  "batch": batch})
        try:
            import torchvision  # noqa: F401

            for size in args.sizes:
                for batch in args.batches:
                    cases.append({"kind": "torchvision", "size": size, "batch": batch})
        except Exception as e:  # absent, or installed without its compiled ops
            print(f"torchvision unavailable ({type(e).__name__}: {e}): no comparison")
    if args.only in (None, "training"):
        for layers in ("heads", "all"):
            cases.append({"kind": "training", "backbone": "resnet50", "size": 512, "batch": 2,
                          "layers": layers})
    print(f"cores: {os.cpu_count()}, threads: {args.threads}, median of {args.runs} runs "
          f"after {args.warmup} warm-up")
    results = []
    for case in cases:
        cmd = [sys.executable, __file__, "--child", json.dumps(case), "--threads",
               str(args.threads), "--warmup", str(args.warmup), "--runs", str(args.runs)]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
        if out.returncode or not lines:
            print(f"FAILED {case}: {out.stderr[-2000:]}")
            continue
        result = dict(case, **json.loads(lines[-1][7:]))
        results.append(result)
        print(json.dumps(result))
    by_key = {(r["size"], r["batch"]): r for r in results if r["kind"] == "torchvision"}
    for r in results:
        theirs = by_key.get((r["size"], r["batch"]))
        if r["kind"] == "inference" and r["backbone"] == "resnet50" and theirs:
            ratio = r["seconds_per_image"] / theirs["seconds_per_image"]
            print(f"ratio ours/torchvision, {r['size']}px batch {r['batch']}: {ratio:.2f}")
    return results


if __name__ == "__main__":
    main()
