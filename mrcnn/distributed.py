"""Training over several processes or machines: strategies, sharded input, chief-only
writing, and a launcher for one machine.

    python -m mrcnn.distributed launch --workers 2 -- samples/shapes/train.py --strategy multiworker

Multi-worker training uses TensorFlow's own engine, tf.distribute.MultiWorkerMirroredStrategy,
configured by the TF_CONFIG environment variable of each process. Here:

- make_strategy(name) builds "default", "mirrored" or "multiworker".
- distribute_batches(strategy, generator, first_batch) feeds fit() under every strategy: every
  worker computes the global batch k (DataGenerator.batch(k), a pure function of the seed) and
  gives each of its replicas its own slice (data_generator.split_batch), so the replicas
  together see exactly the batch one process would train on, each image once.
- is_chief(strategy) / worker_dir(): only the chief writes checkpoints and TensorBoard events;
  the other workers write to temporary directories that are removed.
- launch(): N worker processes on 127.0.0.1 with free ports and their TF_CONFIG, logs prefixed
  "[worker i]"; when one fails, the others are stopped and the launcher exits non-zero naming it.

Failure detection: TensorFlow's coordination service (on by default for
MultiWorkerMirroredStrategy) heartbeats every task and aborts the collective ops of the
survivors when a peer stops answering, so they raise instead of hanging. The launcher does not
wait for that: it stops the other workers as soon as one exits with an error.
"""

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

__all__ = ["STRATEGIES", "make_strategy", "task_info", "is_chief", "num_workers",
           "distribute_batches", "worker_dir", "free_ports", "tf_config", "launch", "main"]

STRATEGIES = ("default", "mirrored", "multiworker")


def make_strategy(name="default", collective_timeout=None):
    """A tf.distribute strategy by name.

    "default": TensorFlow's default (no distribution). "mirrored": MirroredStrategy over the
    visible GPUs (or the CPU). "multiworker": MultiWorkerMirroredStrategy over the cluster in
    TF_CONFIG (a single-worker cluster when TF_CONFIG is unset).

    collective_timeout: seconds after which a collective op raises DeadlineExceededError
    (tf.distribute.experimental.CommunicationOptions.timeout_seconds). Default None: no
    per-op timeout, because TensorFlow starts one thread per collective to time it and
    recommends it for debugging only; dead peers are detected by the coordination service.
    """
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        options = tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=collective_timeout)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")


def task_info(strategy=None):
    """(task_type, task_id, number of worker processes) of this process.

    From the strategy's cluster resolver (MultiWorkerMirroredStrategy), else from TF_CONFIG,
    else a single process ("worker", 0, 1)."""
    resolver = getattr(strategy, "cluster_resolver", None) if strategy is not None else None
    if resolver is not None:
        cluster = resolver.cluster_spec().as_dict()
        task_type, task_id = resolver.task_type, resolver.task_id
    else:
        config = json.loads(os.environ.get("TF_CONFIG") or "{}")
        cluster = config.get("cluster", {})
        task = config.get("task", {})
        task_type, task_id = task.get("type"), task.get("index")
        if strategy is not None:
            # A strategy without a cluster (default, MirroredStrategy) is one process, even
            # when TF_CONFIG is set for another program.
            cluster = {}
    count = sum(len(cluster.get(job, [])) for job in ("chief", "worker"))
    if not count:
        return "worker", 0, 1
    return task_type or "worker", int(task_id or 0), count


def is_chief(strategy=None):
    """True for the process that writes checkpoints and logs: the "chief" task if the cluster
    has one, else worker 0; always True for a single process."""
    task_type, task_id, count = task_info(strategy)
    if count == 1:
        return True
    resolver = getattr(strategy, "cluster_resolver", None) if strategy is not None else None
    if resolver is not None:
        has_chief = "chief" in resolver.cluster_spec().as_dict()
    else:
        has_chief = "chief" in json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster", {})
    return task_type == "chief" if has_chief else (task_type == "worker" and task_id == 0)


def num_workers(strategy=None):
    """Number of processes in the strategy's cluster (1 without a cluster)."""
    return task_info(strategy)[2]


@contextlib.contextmanager
def worker_dir(log_dir, chief):
    """Yields log_dir (created) on the chief; on other workers a new temporary directory,
    removed afterwards, so that they can run the same callbacks without writing anything."""
    if chief:
        os.makedirs(log_dir, exist_ok=True)
        yield log_dir
        return
    tmp = tempfile.mkdtemp(prefix="mrcnn_worker_")
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _specs(batch, per_replica, variable_size):
    import tensorflow as tf

    specs = {}
    for key, value in batch.items():
        shape = [per_replica] + list(value.shape[1:])
        if variable_size and key in ("input_image", "input_gt_masks", "input_rpn_match"):
            # Molded image size (hence anchors and full-size masks) can vary between batches.
            last = len(shape) - 1 if key != "input_rpn_match" else 2
            shape = shape[:1] + [None] * (last - 1) + shape[last:]
        specs[key] = tf.TensorSpec(shape, tf.as_dtype(value.dtype))
    return specs


def distribute_batches(strategy, generator, first_batch=0):
    """The endless input of Keras' fit() (training or validation data), under any strategy:
    a tf.distribute.DistributedDataset, or a tf.data.Dataset under the default strategy.

    generator: a data_generator.DataGenerator whose batch_size is the global batch. Each
    worker's input pipeline yields, for global batches first_batch, first_batch + 1, ...
    (DataGenerator.iter_batches, with the generator's loader workers), the slices of its local
    replicas (data_generator.split_batch); one process without replicas gets whole batches.
    Raises ValueError when the global batch does not split evenly over the replicas in sync.
    """
    import tensorflow as tf

    from mrcnn.data_generator import split_batch

    replicas = strategy.num_replicas_in_sync
    if generator.batch_size % replicas:
        raise ValueError(f"the global batch ({generator.batch_size} images, BATCH_SIZE = "
                         f"GPU_COUNT * IMAGES_PER_GPU) does not split over the strategy's "
                         f"{replicas} replicas")
    per_replica = generator.batch_size // replicas
    square = generator.config.IMAGE_RESIZE_MODE == "square"
    specs = _specs(generator.batch(first_batch), per_replica, variable_size=not square)

    def dataset_fn(context):
        local = replicas // context.num_input_pipelines
        first_replica = context.input_pipeline_id * local

        def batches():
            for batch in generator.iter_batches(first_batch):
                for r in range(first_replica, first_replica + local):
                    yield split_batch(batch, r, replicas)

        options = tf.data.Options()
        # Sharding is done above: each pipeline already yields only its replicas' slices.
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        # No autotuning threads: validation makes a new iterator every epoch, and destroying
        # one waits for its threads (data_generator's docstring).
        options.autotune.enabled = False
        return tf.data.Dataset.from_generator(batches, output_signature=specs) \
            .with_options(options).prefetch(local)

    return strategy.distribute_datasets_from_function(dataset_fn)


# ---------------------------------------------------------------------------- launcher
def free_ports(n, host="127.0.0.1"):
    """n distinct TCP ports free on host right now."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(addresses, index):
    """The TF_CONFIG JSON string of worker `index` of a cluster of worker addresses."""
    return json.dumps({"cluster": {"worker": list(addresses)},
                       "task": {"type": "worker", "index": index}})


def _stream(index, pipe, lock):
    for line in iter(pipe.readline, ""):
        with lock:
            sys.stdout.write(f"[worker {index}] {line}")
            sys.stdout.flush()
    pipe.close()


def _stop(procs, grace):
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
    deadline = time.time() + grace
    for p in procs:
        try:
            p.wait(max(deadline - time.time(), 0.01))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _describe_exit(code):
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def launch(command, workers=2, host="127.0.0.1", grace=10.0, env=None):
    """Runs `command` as `workers` processes forming one TF_CONFIG cluster on `host`.

    command: argv list; a leading "*.py" script or "-m" gets the current Python prepended.
    Each line a worker prints is echoed as "[worker i] line". When a worker exits with an
    error, the others get SIGTERM (SIGKILL after `grace` seconds), a message naming the
    failed worker goes to stderr, and its exit code is returned (1 if it was killed by a
    signal). Returns 0 when every worker succeeds.
    """
    command = list(command)
    if not command:
        raise ValueError("no command to launch (put it after --)")
    if command[0] == "-m" or command[0].endswith(".py"):
        command = [sys.executable] + command
    addresses = [f"{host}:{p}" for p in free_ports(workers, host)]
    lock = threading.Lock()
    procs, threads = [], []
    try:
        for i in range(workers):
            worker_env = dict(os.environ if env is None else env, TF_CONFIG=tf_config(addresses, i))
            p = subprocess.Popen(command, env=worker_env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, bufsize=1,
                                 start_new_session=True)
            procs.append(p)
            with lock:
                print(f"[launcher] worker {i} pid {p.pid} at {addresses[i]}", flush=True)
            t = threading.Thread(target=_stream, args=(i, p.stdout, lock), daemon=True)
            t.start()
            threads.append(t)
        while True:
            codes = [p.poll() for p in procs]
            failed = [i for i, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                i = failed[0]
                _stop(procs, grace)
                for t in threads:
                    t.join(5)
                print(f"[launcher] worker {i} (pid {procs[i].pid}) {_describe_exit(codes[i])}; "
                      f"stopped the other {workers - 1} worker(s)", file=sys.stderr, flush=True)
                return codes[i] if codes[i] > 0 else 1
            if all(c == 0 for c in codes):
                for t in threads:
                    t.join(5)
                return 0
            time.sleep(0.2)
    finally:
        _stop(procs, grace)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    command = []
    if "--" in argv:
        k = argv.index("--")
        argv, command = argv[:k], argv[k + 1:]
    p = argparse.ArgumentParser(prog="python -m mrcnn.distributed",
                                description="Run a training script as N local workers.")
    sub = p.add_subparsers(dest="action", required=True)
    la = sub.add_parser("launch", help="start N workers on 127.0.0.1: launch --workers N -- "
                                       "script.py ARGS")
    la.add_argument("--workers", type=int, default=2)
    la.add_argument("--grace", type=float, default=10.0,
                    help="seconds between SIGTERM and SIGKILL when stopping workers")
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error("--workers must be >= 1")
    if not command:
        p.error("give the command after --, e.g. -- samples/shapes/train.py --strategy "
                "multiworker")

    def stop(signum, frame):  # launch()'s cleanup stops the workers
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    return launch(command, workers=args.workers, grace=args.grace)


if __name__ == "__main__":
    sys.exit(main())
