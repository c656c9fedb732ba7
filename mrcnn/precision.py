"""Choosing Config.MIXED_PRECISION by name, with "auto" for the machine at hand.

    from mrcnn.precision import resolve_precision
    class MyConfig(Config):
        MIXED_PRECISION = resolve_precision("auto")   # "mixed_bfloat16" or None

"auto" picks "mixed_bfloat16" on a CPU with native bfloat16 arithmetic (the avx512_bf16 or
amx_bf16 flags of /proc/cpuinfo, e.g. AMD Zen 4 and later, Intel Cooper Lake and Sapphire
Rapids and later), where TensorFlow's oneDNN convolutions and matrix products run in bfloat16,
and float32 (None) everywhere else: without those instructions bfloat16 has no fast kernels
(not measured here), and on GPUs the choice between float16 and bfloat16 is the user's. On a
2-core AMD EPYC with avx512_bf16, a training step of the shapes model at half of matterport's
widths takes a quarter less time in mixed_bfloat16 (133 against 176 ms), one of the sample's
quarter-width model about the same (README, Results).
"""

import os
import warnings

__all__ = ["PRECISION_CHOICES", "cpu_has_native_bfloat16", "gpu_visible", "resolve_precision",
           "warn_if_slow_training"]

# Command-line names -> Config.MIXED_PRECISION ("auto" is resolved per machine).
_BY_NAME = {"float32": None, "mixed_bfloat16": "mixed_bfloat16",
            "mixed_float16": "mixed_float16"}
PRECISION_CHOICES = ("auto",) + tuple(_BY_NAME)
_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_native_bfloat16(cpuinfo="/proc/cpuinfo"):
    """True when the CPU's flags (Linux /proc/cpuinfo, or the file given) include a native
    bfloat16 instruction set (avx512_bf16, amx_bf16); False otherwise, also where the file
    does not exist (other systems)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.partition(":")[2].split())
                    return any(flag in flags for flag in _BF16_FLAGS)
    except OSError:
        pass
    return False


def gpu_visible():
    """True when TensorFlow sees a GPU (False without asking it when CUDA_VISIBLE_DEVICES is
    empty)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return False
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def _gpu_present(has_gpu):
    """has_gpu as given, or TensorFlow's answer when it is None."""
    return gpu_visible() if has_gpu is None else has_gpu


def resolve_precision(name, cpuinfo="/proc/cpuinfo", has_gpu=None):
    """Config.MIXED_PRECISION for a precision name of PRECISION_CHOICES: "float32" -> None,
    "mixed_bfloat16", "mixed_float16", and "auto" -> "mixed_bfloat16" on a machine without a
    GPU whose CPU has native bfloat16 (cpu_has_native_bfloat16), else None. has_gpu: None
    asks TensorFlow."""
    if name not in PRECISION_CHOICES:
        raise ValueError(f"precision must be one of {', '.join(PRECISION_CHOICES)}, "
                         f"got {name!r}")
    if name != "auto":
        return _BY_NAME[name]
    if not cpu_has_native_bfloat16(cpuinfo):
        return None
    return None if _gpu_present(has_gpu) else "mixed_bfloat16"


def warn_if_slow_training(precision, has_gpu=None):
    """Warns (UserWarning) and returns True when training under `precision` would take
    TensorFlow's slow float16 path: "mixed_float16" on a machine without a GPU. TensorFlow
    has no fast float16 convolution gradients on CPUs: with oneDNN on an Intel Xeon with
    avx512_fp16 (TensorFlow 2.21) a Conv2DBackpropFilter in float16 ran over 100x slower than
    in float32, and a small model's training step took 87 s against 0.7 s. has_gpu: None asks
    TensorFlow."""
    if precision != "mixed_float16":
        return False
    if _gpu_present(has_gpu):
        return False
    warnings.warn("MIXED_PRECISION='mixed_float16' on a machine without a GPU: TensorFlow's "
                  "float16 convolution gradients are very slow on CPUs (over 100x float32's "
                  "time on some). Use 'mixed_bfloat16' on a CPU with native bfloat16 "
                  "(mrcnn.precision.resolve_precision('auto') picks it) or float32 (None).",
                  UserWarning, stacklevel=3)
    return True
