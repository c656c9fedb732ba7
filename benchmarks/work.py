"""Arithmetic work and the compute floor: how fast could a step be on this CPU at all?

    python benchmarks/work.py                                  # 1024 px, batch 1
    python benchmarks/work.py --torch-python /tmp/tv/bin/python --time
    python benchmarks/work.py --set RPN_CONV_CHANNELS=256

Counts the multiply-adds of one mrcnn inference (`detect()`) and one training step
(`layers="all"`), set up exactly as benchmarks/run.py sets them up (ResNet-50, random weights,
100 detections). The count comes from oneDNN's own log (ONEDNN_VERBOSE=1): every
convolution, inner-product and GEMM primitive TensorFlow executes, which carry nearly all of
the multiply-adds, averaged over the executions. torchvision's Mask R-CNN (run.py's model) is
counted with torch.utils.flop_counter.FlopCounterMode, forward for inference and forward plus
backward for training.

Then it measures the CPU's peak float32 multiply-add rate: benchmarks/fma_peak.c, compiled
with the system's C compiler (AVX-512 or AVX2 + FMA), runs independent chains of vector fused
multiply-adds on --threads threads, best of 3. No implementation does more multiply-adds per
second than that. It also measures a 4096x4096 tf.matmul (float32 and bfloat16), the rate
TensorFlow's best-shaped work reaches. Work / peak is the floor: the fewest seconds the step
can take here in float32, whatever the implementation (in bfloat16, where no peak is measured,
the floor is at the bfloat16 matmul rate). With --time, both libraries are also timed as in
run.py (median of --runs) and the script prints the rate each achieved, its share of the peak,
and the lowest ratio ours / torchvision that our floor allows against torchvision's measured
time.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import run  # noqa: E402  (after the sys.path line, for direct runs)

# "mb1_g32ic256oc256_ih56oh56kh3sh1dh0ph1_iw56ow56kw3sw1dw0pw1" (2D convolutions; also the
# backward passes, which do the forward's multiply-adds), "mb200ic1024oc16" (inner product),
# "1024x200:200x16" (GEMM: M x K : K x N).
_CONV = re.compile(r"mb(\d+)_?(?:g(\d+))?_?ic(\d+)oc(\d+)_ih(\d+)oh(\d+)kh(\d+)"
                   r"\D.*_iw(\d+)ow(\d+)kw(\d+)")
_INNER_PRODUCT = re.compile(r"mb(\d+)ic(\d+)oc(\d+)$")
_GEMM = re.compile(r"(\d+)x(\d+):(\d+)x(\d+)$")
_COUNTED = ("convolution", "deconvolution", "inner_product", "gemm_api")


def _exec_fields(line):
    """The comma-separated fields of a oneDNN verbose `exec` line (field 5: the primitive,
    7: its pass, -2: the problem, -1: milliseconds), or None for any other line."""
    fields = line.strip().split(",")
    if len(fields) < 8 or fields[:4] != ["onednn_verbose", "v1", "primitive", "exec"]:
        return None
    return fields


def _pass(fields):
    return fields[7] or "undef"


def primitive_macs(line):
    """Multiply-adds of one oneDNN verbose `exec` line; 0 for other lines and primitives
    (reorders, pooling, softmax...)."""
    fields = _exec_fields(line)
    if fields is None or fields[5] not in _COUNTED:
        return 0
    problem = fields[-2]
    m = _CONV.match(problem)
    if m:
        mb, groups, ic, oc, ih, oh, kh, iw, ow, kw = (int(x) if x else 1 for x in m.groups())
        if fields[5] == "deconvolution":   # one multiply-add per input pixel and tap
            oh, ow = ih, iw
        return mb * ic * oc * kh * kw * oh * ow // groups
    m = _INNER_PRODUCT.match(problem)
    if m:
        mb, ic, oc = map(int, m.groups())
        return mb * ic * oc
    m = _GEMM.match(problem)
    if m:
        rows, inner, inner2, cols = map(int, m.groups())
        if inner != inner2:
            raise ValueError(f"GEMM shapes do not chain: {problem}")
        return rows * inner * cols
    return 0


def count_macs(log_text):
    """(total multiply-adds, {prop_kind: multiply-adds}) of a oneDNN verbose log."""
    total, by_kind = 0, {}
    for line in log_text.splitlines():
        macs = primitive_macs(line)
        if macs:
            kind = _pass(_exec_fields(line))
            by_kind[kind] = by_kind.get(kind, 0) + macs
            total += macs
    return total, by_kind


def pass_seconds(log_text):
    """{prop_kind: seconds} of a oneDNN verbose log: the execution times (the log's last field,
    milliseconds) of the counted primitives by pass, and of all other primitives (reorders,
    pooling, softmax...) under "other"."""
    seconds = {}
    for line in log_text.splitlines():
        fields = _exec_fields(line)
        if fields is None:
            continue
        kind = _pass(fields) if fields[5] in _COUNTED else "other"
        seconds[kind] = seconds.get(kind, 0.0) + float(fields[-1]) / 1000
    return seconds


def gemm_rate(dtype="float32", n=4096, runs=5):
    """Multiply-adds per second of an n x n x n tf.matmul at `dtype`, best of `runs`."""
    import tensorflow as tf

    a = tf.cast(tf.random.normal([n, n]), dtype)
    b = tf.cast(tf.random.normal([n, n]), dtype)
    matmul = tf.function(lambda: tf.matmul(a, b))
    matmul().numpy()
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        matmul().numpy()
        best = min(best, time.perf_counter() - start)
    return n ** 3 / best


PEAK_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fma_peak.c")
_PEAK_LINE = re.compile(r"peak (\d+) threads: ([0-9.]+) G multiply-adds/s")


def vector_flags(cpuinfo="/proc/cpuinfo"):
    """Compiler flags for fma_peak.c on this CPU: AVX-512 where the CPU has it, else AVX2 with
    FMA; None when it has neither (or is not an x86 Linux machine)."""
    try:
        with open(cpuinfo) as f:
            flags = next((line.split(":", 1)[1].split() for line in f
                          if line.startswith("flags")), [])
    except OSError:
        return None
    if "avx512f" in flags:
        return ["-mavx512f"]
    if "avx2" in flags and "fma" in flags:
        return ["-mavx2", "-mfma"]
    return None


def fma_peak(threads=2, iterations=400_000_000, runs=3):
    """Peak float32 multiply-adds per second of `threads` cores, by fma_peak.c (best of
    `runs`); None with the reason printed when there is no C compiler or no AVX2/AVX-512."""
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    flags = vector_flags()
    if not compiler or not flags:
        print("peak not measured: " + ("no C compiler (cc, gcc or $CC)" if not compiler
                                       else "the CPU has neither AVX-512 nor AVX2 with FMA"))
        return None
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "fma_peak")
        build = subprocess.run([compiler, "-O2", *flags, "-pthread", PEAK_SOURCE, "-o", exe],
                               capture_output=True, text=True)
        if build.returncode:
            print(f"peak not measured: {compiler} failed on {PEAK_SOURCE}:\n{build.stderr}")
            return None
        best = 0.0
        for _ in range(runs):
            out = subprocess.run([exe, str(threads), str(iterations)], capture_output=True,
                                 text=True, check=True).stdout
            m = _PEAK_LINE.search(out)
            if not m or int(m.group(1)) != threads:
                raise RuntimeError(f"unexpected output of fma_peak: {out!r}")
            best = max(best, float(m.group(2)) * 1e9)
    return best


def torchvision_work(kind, size, batch):
    """Multiply-adds of torchvision's inference (per image) or training step."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    model = run._torchvision_model(size, train=kind == "torchvision_training")
    counter = FlopCounterMode(display=False)
    if kind == "torchvision":
        images = [torch.rand(3, size, size) for _ in range(batch)]
        with torch.no_grad(), counter:
            model(images)
        return counter.get_total_flops() / 2 / batch
    images, targets = run.torchvision_training_batch(size, batch)
    with counter:
        sum(model(images, targets).values()).backward()
    return counter.get_total_flops() / 2


def _child(args):
    import torch

    torch.set_num_threads(args.threads)
    spec = json.loads(args.child)
    macs = torchvision_work(spec["kind"], spec["size"], spec["batch"])
    print("RESULT " + json.dumps({"macs": macs}))


def mrcnn_work(case, threads):
    """Multiply-adds of one mrcnn execution of a run.py case (per image for inference), from
    oneDNN's log of one warm-up and one timed run, and the seconds its primitives took by pass
    ("seconds_by_kind"; TensorFlow runs one op at a time here, so that they do not overlap);
    None when the case fails or TensorFlow logs no oneDNN primitive (oneDNN off:
    TF_ENABLE_ONEDNN_OPTS=0, or not an x86 CPU)."""
    result = run.run_case(case, sys.executable, threads, warmup=1, runs=1,
                          env={"ONEDNN_VERBOSE": "1"}, keep_stdout=True, inter_op=1)
    if result is None:
        return None
    total, by_kind = count_macs(result["stdout"])
    if not total:
        print(f"no oneDNN primitives logged for {case['kind']}: cannot count its work")
        return None
    per = 2 * (case["batch"] if case["kind"] == "inference" else 1)
    return {"macs": total / per, "by_kind": {k: v / per for k, v in by_kind.items()},
            "seconds_by_kind": {k: v / per for k, v in pass_seconds(result["stdout"]).items()}}


def _seconds(result):
    return result.get("seconds_per_image", result.get("seconds_per_step"))


def main(argv=None):
    from mrcnn.cli import config_override  # light: no TensorFlow

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--only", choices=["inference", "training"], default=None)
    p.add_argument("--torch-python", default=sys.executable,
                   help="Python interpreter that has torch and torchvision (another venv)")
    p.add_argument("--no-torchvision", action="store_true")
    p.add_argument("--time", action="store_true",
                   help="also time both libraries (as run.py) and print achieved rates")
    p.add_argument("--set", type=config_override, nargs="+", action="extend", default=[],
                   metavar="ATTR=VALUE", help="Config overrides for mrcnn, as in run.py")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return _child(args)
    problem = "--no-torchvision" if args.no_torchvision else \
        run._torchvision_problem(args.torch_python)
    if problem:
        print(f"torchvision not counted ({problem})")
    overrides = dict(args.set)
    bf16 = "bfloat16" in str(overrides.get("MIXED_PRECISION", ""))
    kinds = [("inference", "torchvision"), ("training", "torchvision_training")]
    report = {}
    for ours, theirs in kinds:
        if args.only and ours != args.only:
            continue
        case = {"kind": ours, "backbone": "resnet50", "size": args.size, "batch": args.batch}
        if ours == "training":
            case["layers"] = "all"
        if overrides:
            case["overrides"] = overrides
        entry = {"mrcnn": mrcnn_work(case, args.threads)}
        their_case = {"kind": theirs, "size": args.size, "batch": args.batch}
        if not problem:
            counted = run.run_case(their_case, args.torch_python, args.threads,
                                   script=os.path.abspath(__file__))
            entry["torchvision"] = counted and {"macs": counted["macs"]}
        if args.time:
            timed = run.run_case(case, sys.executable, args.threads, args.warmup, args.runs)
            if entry["mrcnn"] and timed:
                entry["mrcnn"]["seconds"] = _seconds(timed)
            if entry.get("torchvision"):
                timed = run.run_case(their_case, args.torch_python, args.threads,
                                     args.warmup, args.runs)
                if timed:
                    entry["torchvision"]["seconds"] = _seconds(timed)
        report[ours] = entry

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    rates = {"float32": gemm_rate("float32"), "bfloat16": gemm_rate("bfloat16")}
    peak = fma_peak(args.threads)
    print(f"\nmatrix multiply, 4096x4096, {args.threads} threads, best of 5: "
          f"float32 {rates['float32'] / 1e9:.0f} G multiply-adds/s, "
          f"bfloat16 {rates['bfloat16'] / 1e9:.0f} G/s")
    if peak:
        print(f"peak float32 multiply-adds (fma_peak.c, {args.threads} threads, best of 3): "
              f"{peak / 1e9:.0f} G/s; the matmul reaches {rates['float32'] / peak:.0%} of it")
    float32_rate = peak or rates["float32"]
    rate = rates["bfloat16"] if bf16 else float32_rate
    rate_name = "the bfloat16 matmul rate" if bf16 else \
        ("the float32 peak" if peak else "the float32 matmul rate")
    print(f"floors at {rate_name}")
    for ours, entry in report.items():
        unit = "image" if ours == "inference" else "step"
        what = f"{ours} {args.size}px batch {args.batch}" + \
            ("" if ours == "inference" else ' layers="all"')
        print(f"\n{what}" + "".join(f" {k}={v}" for k, v in overrides.items()))
        for who in ("mrcnn", "torchvision"):
            w = entry.get(who)
            if not w:
                continue
            floor = w["macs"] / (rate if who == "mrcnn" else float32_rate)
            line = f"  {who:11} {w['macs'] / 1e9:7.1f} G multiply-adds per {unit}; floor " \
                   f"{floor:.2f} s"
            if "seconds" in w:
                line += f"; measured {w['seconds']:.2f} s, {w['macs'] / w['seconds'] / 1e9:.0f}" \
                        f" G/s, {w['seconds'] / floor:.2f}x the floor"
                if peak and not (bf16 and who == "mrcnn"):
                    line += f" ({w['macs'] / w['seconds'] / peak:.0%} of the peak)"
            print(line)
            w["floor_seconds"] = floor
        if entry["mrcnn"] and "by_kind" in entry["mrcnn"]:
            print("  mrcnn by pass: " + ", ".join(
                f"{k} {v / 1e9:.1f} G" for k, v in sorted(entry["mrcnn"]["by_kind"].items())))
            times = entry["mrcnn"]["seconds_by_kind"]
            print(f"  mrcnn's oneDNN primitives (ops one at a time, verbose log on): "
                  f"{sum(times.values()):.2f} s per {unit}")
            for k, t in sorted(times.items(), key=lambda kv: -kv[1]):
                macs = entry["mrcnn"]["by_kind"].get(k, 0)
                line = f"    {k:18} {t:6.2f} s"
                if macs and t:
                    line += f", {macs / t / 1e9:.0f} G/s"
                    if peak and not bf16:
                        line += f" ({macs / t / peak:.0%} of the peak)"
                print(line)
        theirs = entry.get("torchvision")
        if entry["mrcnn"] and theirs and "seconds" in theirs:
            print(f"  lowest ratio ours / torchvision that our floor allows: "
                  f"{entry['mrcnn']['floor_seconds'] / theirs['seconds']:.2f}")
    return {"rates": rates, "peak": peak, "cases": report}


if __name__ == "__main__":
    main()
