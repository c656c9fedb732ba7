"""Time a training step of the shapes sample's model inside train() (data loading included).

    python benchmarks/shapes_step.py                              # the sample's defaults
    python benchmarks/shapes_step.py --precision float32
    python benchmarks/shapes_step.py --set TOP_DOWN_PYRAMID_SIZE=128 RPN_CONV_CHANNELS=128 \
        FPN_CLASSIF_FC_LAYERS_SIZE=512 MASK_HEAD_CHANNELS=128    # the half-width model

Builds samples/shapes/train.py's training config (mini backbone, --precision as in the
sample, default auto; --set overrides on top), trains --epochs epochs of --steps steps on
generated shapes from random weights and prints the wall-clock milliseconds per step of each
epoch; the figure is the median over the epochs after the first (which traces the step).
"""

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    from mrcnn.cli import config_override
    from mrcnn.precision import PRECISION_CHOICES, resolve_precision

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--precision", choices=PRECISION_CHOICES, default="auto")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--steps", type=int, default=40, help="steps per epoch")
    p.add_argument("--set", type=config_override, nargs="+", action="extend", default=[],
                   metavar="ATTR=VALUE")
    args = p.parse_args(argv)
    if args.epochs < 2:
        p.error("--epochs must be >= 2 (the first epoch traces the step and is not counted)")

    import keras

    from mrcnn import model as modellib
    from samples.shapes.shapes import ShapesDataset
    from samples.shapes.train import BACKBONES, ShapesTrainConfig

    attrs = dict(BACKBONES["mini"], STEPS_PER_EPOCH=args.steps,
                 MIXED_PRECISION=resolve_precision(args.precision), **dict(args.set))
    config = type("StepConfig", (ShapesTrainConfig,), attrs)()
    times = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append((time.perf_counter() - self.start) / args.steps)
            print(f"epoch {epoch + 1}: {times[-1] * 1000:.0f} ms/step", flush=True)

    keras.utils.set_random_seed(0)
    dataset = ShapesDataset()
    dataset.load_shapes(300, 128, 128, seed=0)
    dataset.prepare()
    model = modellib.MaskRCNN("training", config, "/tmp/mrcnn-bench")
    model.train(dataset, None, config.LEARNING_RATE, args.epochs, "all",
                custom_callbacks=[Clock()], seed=0, verbose=0)
    median = statistics.median(times[1:]) * 1000
    print(f"shapes training step: {median:.0f} ms (median of epochs 2-{args.epochs}, "
          f"{args.steps} steps each; MIXED_PRECISION={config.MIXED_PRECISION}, "
          f"{os.cpu_count()} cores)")
    return median


if __name__ == "__main__":
    main()
