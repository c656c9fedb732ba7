"""Worker script of tests/test_distribute_multiworker.py (not collected by pytest).

Trains the tiny config with the mini backbone on 8 shapes images, global batch 2 (one process
with batch 2, or IMAGES_PER_GPU = 1 on each of 2 workers), and writes each step's logged
losses, the initial and the final weights to --out (X.npz; worker i > 0 writes X.worker<i>.npz).

    python tests/distributed_train.py --strategy default --logs L --out single.npz
    python -m mrcnn.distributed launch --workers 2 -- tests/distributed_train.py \\
        --strategy multiworker --logs L --out multi.npz
    ... --weights last --epochs 2 --die-at-step 1   # worker 1 SIGKILLs itself mid-epoch
"""

import argparse
import os
import signal
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)  # before tests/, whose samples/ package would shadow the real one
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--strategy", default="default")
    p.add_argument("--logs", required=True)
    p.add_argument("--out", default=None)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--weights", default=None, help="'last' to resume")
    p.add_argument("--die-at-step", type=int, default=None,
                   help="worker --die-worker kills itself (SIGKILL) before its step N+1 "
                        "(counted from the start of this run)")
    p.add_argument("--die-worker", type=int, default=1)
    p.add_argument("--loader-workers", type=int, default=None, help="train(workers=...)")
    args = p.parse_args(argv)

    import keras
    import numpy as np

    from mrcnn import distributed
    from mrcnn import model as modellib
    from samples.shapes.shapes import ShapesDataset
    from samples.shapes.train import BACKBONES
    from tests.conftest import TinyConfig

    strategy = distributed.make_strategy(args.strategy)
    _, index, workers = distributed.task_info(strategy)
    replicas = strategy.num_replicas_in_sync
    overrides = dict(BACKBONES["mini"], NAME="dist", GPU_COUNT=replicas,
                     IMAGES_PER_GPU=2 // replicas, STEPS_PER_EPOCH=args.steps,
                     VALIDATION_STEPS=1, POST_NMS_ROIS_TRAINING=16, TRAIN_ROIS_PER_IMAGE=32)
    config = type("DistConfig", (TinyConfig,), overrides)()
    dataset = ShapesDataset()
    dataset.load_shapes(8, 128, 128, seed=0)
    dataset.prepare()

    keras.utils.set_random_seed(0)
    model = modellib.MaskRCNN("training", config, args.logs, strategy=strategy)
    if args.weights == "last":
        model.load_weights(model.find_last(), by_name=True, verbose=0)
    initial = model.keras_model.get_weights()
    losses = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if len(losses) == args.die_at_step and index == args.die_worker:
                print(f"worker {index} kills itself after {len(losses)} steps at "
                      f"{time.time():.3f}", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)

        def on_train_batch_end(self, batch, logs=None):
            losses.append([float(logs[k]) for k in sorted(logs)])

    model.train(dataset, dataset, 0.01, epochs=args.epochs, layers="all", seed=0,
                custom_callbacks=[Record()], verbose=2, workers=args.loader_workers)
    if args.out:
        out = args.out[:-len(".npz")] + f".worker{index}.npz" if index else args.out
        np.savez(out, losses=np.array(losses),
                 **{f"w{i}": w for i, w in enumerate(model.keras_model.get_weights())},
                 **{f"i{i}": w for i, w in enumerate(initial)})
    print(f"worker {index} of {workers} done, epoch {model.epoch}, log dir {model.log_dir}",
          flush=True)


if __name__ == "__main__":
    main()
