"""Batch inference over many image files, resumable, writing COCO-format results.

    python -m mrcnn.batch_inference --config samples.shapes.train:ShapesInferenceConfig \\
        --weights logs/shapes.../mask_rcnn_shapes_0007.h5 --input images/ --output results.json

Images are decoded by a tf.data pipeline (in parallel, prefetched) while the model runs.
Progress is appended to <output>.partial.jsonl, one line per finished image, flushed as it
goes; a rerun skips the images already there (a line cut off by a kill is ignored and redone).
The final <output> (written atomically) is {"images": [{"id", "file_name", "height",
"width"}], "annotations": [COCO results with RLE masks]}, image ids following the sorted file
order, so an interrupted and resumed run writes the same file as an uninterrupted one. With
Config.MASK_SCORING each annotation also has "mask_score" (evaluation.coco_metrics ranks segm
results by it).

Sharded over several processes or machines (the same sorted input list on each):

    python -m mrcnn.batch_inference ... --output results.json --num-shards 3 --shard-index 0
    ...                                                        (shard indices 1 and 2 elsewhere)
    python -m mrcnn.batch_inference --merge --output results.json --num-shards 3

Shard I of N takes the contiguous block [I * n // N, (I + 1) * n // N) of the n sorted inputs
and writes results-shard-I-of-N.json beside --output (resumable like an unsharded run), its
image ids being positions in the whole list. --merge checks that the N shard files cover every
image once and writes the JSON an unsharded run writes (same order, same content).
"""

import argparse
import importlib
import json
import os

__all__ = ["list_images", "shard_range", "shard_output", "run_batch_inference",
           "merge_shards", "main"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def list_images(source):
    """Sorted image paths of a directory, or the paths listed (one per line) in a text file,
    or an explicit list."""
    if isinstance(source, (list, tuple)):
        return [str(p) for p in source]
    if os.path.isdir(source):
        return sorted(os.path.join(source, f) for f in os.listdir(source)
                      if f.lower().endswith(IMAGE_EXTENSIONS))
    with open(source) as f:
        return [line.strip() for line in f if line.strip()]


def shard_range(count, num_shards, shard_index):
    """[start, stop) of shard `shard_index` of `num_shards` over `count` inputs: contiguous,
    sizes differing by at most one, in order."""
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ValueError(f"--shard-index must be in [0, --num-shards={num_shards}), "
                         f"got {shard_index}")
    return shard_index * count // num_shards, (shard_index + 1) * count // num_shards


def shard_output(output, num_shards, shard_index):
    """Output path of one shard: results.json -> results-shard-1-of-3.json."""
    if num_shards == 1:
        return output
    stem, ext = os.path.splitext(output)
    return f"{stem}-shard-{shard_index}-of-{num_shards}{ext or '.json'}"


def _read_partial(path):
    done = {}
    if not os.path.isfile(path):
        return done
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut off by an interruption: that image is redone
            done[record["file_name"]] = record
    return done


def _dataset(paths):
    import tensorflow as tf

    def load(path):
        data = tf.io.read_file(path)
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        return path, tf.cast(image, tf.uint8)

    return tf.data.Dataset.from_tensor_slices(paths).map(
        load, num_parallel_calls=tf.data.AUTOTUNE).prefetch(4)


def run_batch_inference(model, paths, output, category_ids=None, stop_after=None, verbose=1,
                        num_shards=1, shard_index=0):
    """Detects objects in every image and writes COCO results to `output` (see module doc).

    model: an inference MaskRCNN. category_ids: maps the model's class ids to result
    category ids (default: the class id). stop_after: process at most this many new images,
    then return without writing `output` (used to test resuming). num_shards, shard_index:
    process only that shard's block of the sorted inputs and write shard_output(output, ...)
    (merge them with merge_shards). Returns the output path, or None when stopped early.
    """
    import keras

    from mrcnn.evaluation import detections_to_coco

    paths = list_images(paths)
    total = len(paths)
    first, stop = shard_range(total, num_shards, shard_index)
    paths = paths[first:stop]
    output = shard_output(output, num_shards, shard_index)
    partial = output + ".partial.jsonl"
    done = _read_partial(partial)
    if os.path.isfile(partial):
        # Keep only complete records, so that new lines never follow a cut-off one.
        with open(partial + ".tmp", "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in done.values())
        os.replace(partial + ".tmp", partial)
    todo = [p for p in paths if p not in done]
    if verbose:
        print(f"{len(paths)} images, {len(done)} already done, {len(todo)} to go")
    def category_of(class_id):
        return category_ids[class_id] if category_ids is not None else class_id

    bar = keras.utils.Progbar(len(todo), unit_name="image") if verbose and todo else None
    processed = 0
    if todo:
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        with open(partial, "a") as f:
            for path, image in _dataset(todo):
                if stop_after is not None and processed >= stop_after:
                    return None
                path = path.numpy().decode()
                image = image.numpy()
                r = model.detect([image])[0]
                record = {"file_name": path, "height": int(image.shape[0]),
                          "width": int(image.shape[1]),
                          "results": detections_to_coco(None, 0, r, category_of)}
                f.write(json.dumps(record) + "\n")
                f.flush()
                os.fsync(f.fileno())
                processed += 1
                if bar:
                    bar.update(processed)
    done = _read_partial(partial)
    images, annotations = [], []
    for image_id, path in enumerate(paths, start=first):
        record = done[path]
        images.append({"id": image_id, "file_name": path, "height": record["height"],
                       "width": record["width"]})
        for result in record["results"]:
            annotations.append(dict(result, image_id=image_id))
    results = {"images": images, "annotations": annotations}
    if num_shards > 1:
        results["shard"] = {"index": shard_index, "num_shards": num_shards,
                            "num_images": total}
    _write_json(results, output)
    if os.path.isfile(partial):
        os.remove(partial)
    return output


def _write_json(data, output):
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    tmp = output + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, output)


def merge_shards(output, num_shards):
    """Joins the shard files of `output` (shard_output names) into `output`: the JSON an
    unsharded run writes. Raises FileNotFoundError naming a missing shard file and ValueError
    when the shards do not fit together (different shard counts or input lists, gaps)."""
    images, annotations, total = [], [], None
    for index in range(num_shards):
        path = shard_output(output, num_shards, index)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"shard {index} of {num_shards} is missing: {path} (run "
                                    f"with --num-shards {num_shards} --shard-index {index})")
        with open(path) as f:
            shard = json.load(f)
        meta = shard.get("shard") or {}
        if (meta.get("index"), meta.get("num_shards")) != (index, num_shards):
            raise ValueError(f"{path} is not shard {index} of {num_shards} (it says {meta})")
        total = meta["num_images"] if total is None else total
        if meta["num_images"] != total:
            raise ValueError(f"{path} was run over {meta['num_images']} inputs, shard 0 over "
                             f"{total}: the shards saw different input lists")
        first, stop = shard_range(total, num_shards, index)
        if [im["id"] for im in shard["images"]] != list(range(first, stop)):
            raise ValueError(f"{path} does not hold images {first}..{stop - 1}")
        images += shard["images"]
        annotations += shard["annotations"]
    _write_json({"images": images, "annotations": annotations}, output)
    return output


def _load_config(spec):
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)()


def main(argv=None):
    p = argparse.ArgumentParser(description="Resumable batch inference to COCO results JSON.")
    p.add_argument("--config", help="module:ConfigClass (an inference config)")
    p.add_argument("--weights")
    p.add_argument("--input", help="a directory of images or a file of paths")
    p.add_argument("--output", required=True)
    p.add_argument("--logs", default="logs")
    p.add_argument("--num-shards", type=int, default=1,
                   help="split the sorted inputs into this many contiguous shards")
    p.add_argument("--shard-index", type=int, default=0, help="the shard to process (0-based)")
    p.add_argument("--merge", action="store_true",
                   help="join the --num-shards shard outputs of --output into --output")
    args = p.parse_args(argv)
    if args.num_shards < 1:
        p.error("--num-shards must be >= 1")
    if args.merge:
        out = merge_shards(args.output, args.num_shards)
        print(out)
        return out
    missing = [f"--{k}" for k in ("config", "weights", "input") if not getattr(args, k)]
    if missing:
        p.error(f"the following arguments are required: {', '.join(missing)}")
    if not 0 <= args.shard_index < args.num_shards:
        p.error(f"--shard-index must be in [0, {args.num_shards})")
    from mrcnn import model as modellib

    config = _load_config(args.config)
    model = modellib.MaskRCNN("inference", config, args.logs)
    model.load_weights(args.weights, by_name=True)
    out = run_batch_inference(model, args.input, args.output, num_shards=args.num_shards,
                              shard_index=args.shard_index)
    print(out)
    return out


if __name__ == "__main__":
    main()
