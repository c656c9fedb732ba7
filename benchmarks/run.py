"""Benchmarks: inference and training speed and peak memory, optionally against torchvision.

    python benchmarks/run.py                     # everything (long on a CPU)
    python benchmarks/run.py --quick             # resnet50, 512 px, batch 1 only
    python benchmarks/run.py --only inference --backbones resnet50 --sizes 1024 --batches 1
    python benchmarks/run.py --only training --train-backbones resnet50 resnext50_32x4d \
        --train-shape 256 1 --no-torchvision      # ResNeXt-50 vs ResNet-50 training step
    python benchmarks/run.py --xla ...           # every mrcnn case also with Config.XLA = True
    python benchmarks/run.py --set RPN_CONV_CHANNELS=256 ...   # Config overrides (mrcnn cases)

Each case runs in its own process (so peak resident memory is per case) with the given
thread count; figures are the median of --runs timed runs after --warmup untimed ones.
Weights are random: with DETECTION_MIN_CONFIDENCE = 0 the work per image does not depend on
them (100 detections are always kept). torchvision's maskrcnn_resnet50_fpn runs too when
torchvision can be imported by --torch-python (default: this interpreter; torch is not a
dependency of mrcnn, so it may live in another venv), and the ratios ours / theirs are printed.

torchvision runs with random weights, the same image size (min_size = max_size = size), the
same thread count and 100 detections at score threshold 0, each library at its own defaults
otherwise. Its training step uses FrozenBatchNorm2d, as ours with TRAIN_BN = False, and
trains every layer (our layers="all").
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


def case_inference(backbone, size, batch, warmup, runs, overrides=None):
    import numpy as np

    from mrcnn import model as modellib

    model = modellib.MaskRCNN("inference", _config(backbone, size, batch, **(overrides or {})),
                              "/tmp/mrcnn-bench")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(batch)]
    seconds = _timed(lambda: model.detect(images), warmup, runs)
    return {"seconds_per_image": seconds / batch, "images_per_second": batch / seconds,
            "tracing_count": model._predict_fn.experimental_get_tracing_count()}


def case_training(backbone, size, batch, layers, warmup, runs, overrides=None):

    from mrcnn import model as modellib
    from mrcnn.data_generator import DataGenerator
    from samples.shapes.shapes import ShapesDataset

    config = _config(backbone, size, batch, NUM_CLASSES=4, STEPS_PER_EPOCH=1,
                     **(overrides or {}))
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

    step = tf.function(trainer.train_step, reduce_retracing=True, jit_compile=config.XLA)
    it = iter(batches)
    seconds = _timed(lambda: step((next(it),)), warmup, runs)
    return {"seconds_per_step": seconds, "loader_seconds_per_batch": load,
            "loader_share": load / (load + seconds)}


def _torchvision_model(size, train):
    import torchvision
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.ops.misc import FrozenBatchNorm2d

    backbone = torchvision.models.resnet50(weights=None, norm_layer=FrozenBatchNorm2d)
    backbone = _resnet_fpn_extractor(backbone, trainable_layers=5)
    model = torchvision.models.detection.MaskRCNN(
        backbone, num_classes=91, box_score_thresh=0.0, box_detections_per_img=100,
        min_size=size, max_size=size)
    return model.train() if train else model.eval()


def _torch_precision(bf16):
    """torch.autocast to bfloat16 on the CPU (--torch-bf16), else a no-op context."""
    import contextlib

    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def case_torchvision(size, batch, warmup, runs, bf16=False):
    import torch

    model = _torchvision_model(size, train=False)
    images = [torch.rand(3, size, size) for _ in range(batch)]

    def run():
        with torch.no_grad(), _torch_precision(bf16):
            model(images)

    seconds = _timed(run, warmup, runs)
    return {"seconds_per_image": seconds / batch, "images_per_second": batch / seconds}


def torchvision_training_batch(size, batch):
    """Random images, each with 3 box-shaped instances: torchvision's (images, targets)."""
    import torch

    images = [torch.rand(3, size, size) for _ in range(batch)]
    targets = []
    for _ in range(batch):
        corners = torch.randint(0, size // 2, (3, 2)).float()
        boxes = torch.cat([corners, corners + torch.randint(32, size // 2, (3, 2))], 1)
        masks = torch.zeros(3, size, size, dtype=torch.uint8)
        for k, (x1, y1, x2, y2) in enumerate(boxes.int().tolist()):
            masks[k, y1:y2, x1:x2] = 1
        targets.append({"boxes": boxes, "labels": torch.tensor([1, 2, 3]), "masks": masks})
    return images, targets


def case_torchvision_training(size, batch, warmup, runs, bf16=False):
    """SGD steps on random images with 3 box-shaped instances each."""
    import torch

    torch.manual_seed(0)
    model = _torchvision_model(size, train=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    images, targets = torchvision_training_batch(size, batch)

    def step():
        optimizer.zero_grad()
        with _torch_precision(bf16):
            loss = sum(model(images, targets).values())
        loss.backward()
        optimizer.step()

    return {"seconds_per_step": _timed(step, warmup, runs)}


# Training cases: (size, batch, layer presets). 512 px batch 2 is the figure, 1024 px
# batch 1 the shape of its torchvision target.
TRAINING_SHAPES = [(512, 2, ("heads", "all")), (1024, 1, ("all",))]

TORCH_CASES = {"torchvision": case_torchvision, "torchvision_training": case_torchvision_training}


def _child(args):
    spec = json.loads(args.child)
    kind = spec.pop("kind")
    if kind in TORCH_CASES:
        import torch

        torch.set_num_threads(args.threads)
        torch.set_num_interop_threads(args.threads)
        result = TORCH_CASES[kind](warmup=args.warmup, runs=args.runs, **spec)
    else:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_op or args.threads)
        case = case_inference if kind == "inference" else case_training
        result = case(warmup=args.warmup, runs=args.runs, **spec)
    result["peak_rss_mib"] = _peak_rss_mib()
    print("RESULT " + json.dumps(result))


def run_case(case, python, threads, warmup=2, runs=5, script=__file__, env=None,
             keep_stdout=False, inter_op=None):
    """Runs one case in its own process (`script --child`) and returns the case dict with
    the child's RESULT figures (and its whole "stdout" with keep_stdout), or None after
    printing why it failed. `env` adds to the environment (e.g. ONEDNN_VERBOSE). inter_op:
    TensorFlow's inter-op threads in the child (default `threads`; 1 runs one op at a time)."""
    cmd = [python, script, "--child", json.dumps(case), "--threads", str(threads),
           "--warmup", str(warmup), "--runs", str(runs)]
    if inter_op:
        cmd += ["--inter-op", str(inter_op)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT, **(env or {}))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if out.returncode or not lines:
        print(f"FAILED {case}: {out.stderr[-2000:]}")
        return None
    result = dict(case, **json.loads(lines[-1][7:]))
    if keep_stdout:
        result["stdout"] = out.stdout
    return result


def _torchvision_problem(python):
    """None when `python` can run torchvision's compiled ops, else why not."""
    check = ("import torch, torchvision; "
             "torchvision.ops.nms(torch.rand(2, 4), torch.rand(2), 0.5)")
    try:
        out = subprocess.run([python, "-c", check], capture_output=True, text=True)
    except OSError as e:
        return str(e)
    if out.returncode:
        lines = out.stderr.strip().splitlines()
        return lines[-1] if lines else f"exit {out.returncode}"
    return None


def _ratios(results):
    """Lines 'ours / torchvision' for every case that has both figures."""
    theirs = {(r["kind"], r["size"], r["batch"]): r for r in results
              if r["kind"] in TORCH_CASES}
    lines = []
    for r in results:
        if r.get("backbone") != "resnet50":
            continue
        variant = _variant(r)
        if r["kind"] == "inference" and ("torchvision", r["size"], r["batch"]) in theirs:
            other = theirs["torchvision", r["size"], r["batch"]]["seconds_per_image"]
            lines.append(f"inference{variant} {r['size']}px batch {r['batch']}: "
                         f"{r['seconds_per_image'] / other:.2f}")
        key = ("torchvision_training", r["size"], r["batch"])
        if r["kind"] == "training" and r["layers"] == "all" and key in theirs:
            other = theirs[key]["seconds_per_step"]
            lines.append(f"training{variant} {r['size']}px batch {r['batch']} (all layers): "
                         f"{r['seconds_per_step'] / other:.2f}")
    return lines


def _variant(r):
    """' ATTR=VALUE' for each Config override of a case (--set, --xla), ' bf16 autocast' for
    a torchvision case under --torch-bf16; '' otherwise."""
    return "".join(f" {k}={v}" for k, v in (r.get("overrides") or {}).items()) + \
        (" bf16 autocast" if r.get("bf16") else "")


def _row(r):
    if r["kind"] in ("inference", "torchvision"):
        who = "torchvision" if r["kind"] == "torchvision" else r["backbone"]
        who += _variant(r)
        what = f"inference {who} {r['size']}px batch {r['batch']}"
        figure = f"{r['seconds_per_image']:.3f} s/image ({r['images_per_second']:.2f} images/s)"
    else:
        who = "torchvision" if r["kind"] == "torchvision_training" else r["backbone"]
        who += _variant(r)
        layers = r.get("layers", "all")
        what = f"training {who} {r['size']}px batch {r['batch']} layers={layers}"
        figure = f"{r['seconds_per_step']:.3f} s/step"
        if "loader_share" in r:
            figure += f" (loader {1000 * r['loader_seconds_per_batch']:.0f} ms/batch, " \
                      f"{100 * r['loader_share']:.1f}%)"
    return f"{what:52} {figure:44} peak RSS {r['peak_rss_mib'] / 1024:.2f} GiB"


def main(argv=None):
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    from mrcnn.cli import config_override  # light: no TensorFlow

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=["inference", "training"], default=None)
    p.add_argument("--backbones", nargs="+", default=["resnet50", "resnet101"])
    p.add_argument("--sizes", nargs="+", type=int, default=[1024, 512])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 4])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--train-backbones", nargs="+", default=["resnet50"],
                   help="backbones of the training cases (e.g. resnet50 resnext50_32x4d)")
    p.add_argument("--train-shape", nargs=2, type=int, metavar=("SIZE", "BATCH"),
                   help="one training shape, layers=all, instead of the default shapes")
    p.add_argument("--no-torchvision", action="store_true",
                   help="skip the torchvision cases")
    p.add_argument("--torch-python", default=sys.executable,
                   help="Python interpreter that has torch and torchvision (another venv)")
    p.add_argument("--xla", action="store_true",
                   help="run every mrcnn case also with Config.XLA = True (jit_compile)")
    p.add_argument("--set", type=config_override, nargs="+", action="extend", default=[],
                   metavar="ATTR=VALUE",
                   help="Config overrides for the mrcnn cases, VALUE a Python literal "
                        "(e.g. RPN_CONV_CHANNELS=256)")
    p.add_argument("--torch-bf16", action="store_true",
                   help="run the torchvision cases under torch.autocast('cpu', bfloat16), to "
                        "compare with --set MIXED_PRECISION=\"'mixed_bfloat16'\"")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--inter-op", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return _child(args)
    if args.quick:
        args.backbones, args.sizes, args.batches, args.runs = ["resnet50"], [512], [1], 3
    problem = "--no-torchvision" if args.no_torchvision else \
        _torchvision_problem(args.torch_python)
    if args.no_torchvision:
        print("torchvision cases skipped (--no-torchvision)")
    elif problem:
        print(f"torchvision unavailable in {args.torch_python} ({problem}): no comparison")
    cases = []
    if args.only in (None, "inference"):
        for backbone in args.backbones:
            for size in args.sizes:
                for batch in args.batches:
                    cases.append({"kind": "inference", "backbone": backbone, "size": size,
                                  "batch": batch})
        if problem is None:
            for size in args.sizes:
                for batch in args.batches:
                    cases.append({"kind": "torchvision", "size": size, "batch": batch})
    if args.only in (None, "training"):
        shapes = [(*args.train_shape, ("all",))] if args.train_shape else TRAINING_SHAPES
        for size, batch, presets in shapes:
            if args.quick and size != 512:
                continue
            for backbone in args.train_backbones:
                for layers in presets:
                    cases.append({"kind": "training", "backbone": backbone, "size": size,
                                  "batch": batch, "layers": layers})
            if problem is None:
                cases.append({"kind": "torchvision_training", "size": size, "batch": batch})
    if args.torch_bf16:
        cases = [dict(c, bf16=True) if c["kind"] in TORCH_CASES else c for c in cases]
    overrides = dict(args.set)
    if overrides:
        cases = [c if c["kind"] in TORCH_CASES else dict(c, overrides=overrides) for c in cases]
    if args.xla:
        cases += [dict(c, overrides=dict(c.get("overrides", {}), XLA=True)) for c in cases
                  if c["kind"] not in TORCH_CASES]
    print(f"cores: {os.cpu_count()}, threads: {args.threads}, median of {args.runs} runs "
          f"after {args.warmup} warm-up")
    results = []
    for case in cases:
        python = args.torch_python if case["kind"] in TORCH_CASES else sys.executable
        result = run_case(case, python, args.threads, args.warmup, args.runs)
        if result is not None:
            results.append(result)
            print(json.dumps(result))
    print("\nsummary")
    for r in results:
        print(_row(r))
    for line in _ratios(results):
        print("ratio ours / torchvision, " + line)
    return results


if __name__ == "__main__":
    main()
