"""torchvision side of tests/test_torchvision_parity.py, run in its own process.

torchvision imports triton, which crashes a process that has already loaded TensorFlow, so the
parity test runs this script (torch and torchvision only) and reads what it writes:

    python tests/torchvision_reference.py OUT_DIR [--keypoint]

OUT_DIR/maskrcnn_random.pth: the state_dict of a seeded random maskrcnn_resnet50_fpn (BatchNorm
statistics randomised, class and objectness weights raised so that there are detections);
OUT_DIR/reference.npz: the test image, torchvision's preprocessed input and every stage's output.
With --v2: maskrcnn_resnet50_fpn_v2 instead, to OUT_DIR/maskrcnn_v2_random.pth and
OUT_DIR/reference_v2.npz.
With --keypoint: keypointrcnn_resnet50_fpn instead, written to OUT_DIR/keypointrcnn_random.pth
and OUT_DIR/keypoint_reference.npz (no masks; keypoints, their scores and heatmap logits).
With --resnext (tests/backbone/test_resnext.py): the ImageNet classifier resnext50_32x4d, seeded
random, to OUT_DIR/resnext50_32x4d_random.pth, and OUT_DIR/resnext_reference.npz: the image, its
normalised input, C2..C5 (layer1..layer4) and the parameter counts of resnext50_32x4d and
resnext101_32x8d (total, fc head, BatchNorm running statistics).
"""

import sys
from pathlib import Path

import numpy as np
import torch
import torchvision


def random_model(seed=0, keypoint=False, v2=False):
    torch.manual_seed(seed)
    if keypoint:
        model = torchvision.models.detection.keypointrcnn_resnet50_fpn(
            weights=None, weights_backbone=None)
    elif v2:
        model = torchvision.models.detection.maskrcnn_resnet50_fpn_v2(
            weights=None, weights_backbone=None, num_classes=91)
    else:
        model = torchvision.models.detection.maskrcnn_resnet50_fpn(
            weights=None, weights_backbone=None, num_classes=91)
    randomise_batch_norm(model)
    with torch.no_grad():
        # Random ResNet features grow to ~1e3; scale the FPN down so that the RPN's outputs
        # stay in a range where sigmoid and exp do not saturate.
        for m in model.backbone.fpn.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.mul_(0.1)
        # Non-trivial heads: objectness and class scores that vary from box to box (large
        # enough for detections above 0.05, from several classes), visible box refinements.
        model.rpn.head.cls_logits.weight.normal_(0.0, 0.05)
        predictor = model.roi_heads.box_predictor
        predictor.cls_score.weight.normal_(0.0, 0.3)
        predictor.bbox_pred.weight.normal_(0.0, 0.01)
        if keypoint:
            # Two classes only: person scores spread over (0.05, 1) rather than saturated at 1
            # (ties would make the NMS order arbitrary), raised a little so that many boxes pass
            # 0.05; random keypoint-head biases so that the heatmaps are not all alike.
            predictor.cls_score.weight.mul_(0.2)
            predictor.cls_score.bias[1] += 0.5
            for m in model.roi_heads.keypoint_head.modules():
                if isinstance(m, torch.nn.Conv2d):
                    m.bias.normal_(0.0, 0.1)
            model.roi_heads.keypoint_predictor.kps_score_lowres.bias.normal_(0.0, 1.0)
    return model.eval()


def spread_class_scores(model, image, scale=1.0):
    """v2's box features share one large component, so every random cls_score row ranks the
    classes alike (one label, scores near 1). Remove that direction (the mean feature on this
    image's ROIs) from the rows and scale them to logits of standard deviation `scale`: many
    labels and scores spread over (0.1, 0.95)."""
    head = model.roi_heads
    features = []
    hook = head.box_head.register_forward_hook(lambda m, i, o: features.append(o))
    with torch.no_grad():
        model([image])
        hook.remove()
        f = features[0]
        u = f.mean(0) / f.mean(0).norm()
        w = head.box_predictor.cls_score.weight
        w -= (w @ u)[:, None] * u[None]
        w *= scale / (f @ w.T).std()


def test_image(seed=1):
    """A 480x640 uint8 RGB image: gradients and a few flat rectangles."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:480, 0:640]
    image = np.stack([(x * 0.4) % 256, (y * 0.5) % 256, ((x + y) * 0.3) % 256], axis=-1)
    for _ in range(6):
        y1, x1 = rng.integers(0, 380), rng.integers(0, 540)
        image[y1:y1 + rng.integers(40, 100), x1:x1 + rng.integers(40, 100)] = \
            rng.integers(0, 256, 3)
    return image.astype(np.uint8)


def randomise_batch_norm(model):
    """Non-trivial BatchNorm affine parameters and running statistics."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)


def parameter_counts(name):
    model = getattr(torchvision.models, name)(weights=None)
    return {f"{name}_total": sum(p.numel() for p in model.parameters()),
            f"{name}_fc": sum(p.numel() for p in model.fc.parameters()),
            f"{name}_running_stats": sum(b.numel() for n, b in model.named_buffers()
                                          if n.endswith(("running_mean", "running_var")))}


def resnext_main(out_dir, seed=0):
    out_dir = Path(out_dir)
    torch.manual_seed(seed)
    model = torchvision.models.resnext50_32x4d(weights=None)
    randomise_batch_norm(model)
    model.eval()
    torch.save(model.state_dict(), out_dir / "resnext50_32x4d_random.pth")
    image = test_image()[:256, :320]
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    with torch.no_grad():
        x = (torch.from_numpy(image).permute(2, 0, 1).float() / 255.0 - mean) / std
        x = x[None]
        stages = []
        h = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
            h = layer(h)
            stages.append(nhwc(h))
    counts = {}
    for name in ("resnext50_32x4d", "resnext101_32x8d"):
        counts.update(parameter_counts(name))
    np.savez(out_dir / "resnext_reference.npz", image=image, molded=nhwc(x),
             **{f"C{i + 2}": s for i, s in enumerate(stages)},
             **{k: np.int64(v) for k, v in counts.items()})


def nhwc(t):
    return t.permute(0, 2, 3, 1).numpy()


def main(out_dir, keypoint=False, v2=False):
    out_dir = Path(out_dir)
    model = random_model(keypoint=keypoint, v2=v2)
    image = test_image()
    if v2:
        spread_class_scores(model, torch.from_numpy(image).permute(2, 0, 1).float() / 255.0)
    prefix = "keypoint" if keypoint else "mask"
    torch.save(model.state_dict(), out_dir / f"{prefix}rcnn{'_v2' if v2 else ''}_random.pth")
    with torch.no_grad():
        tensor = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
        images, _ = model.transform([tensor])
        body = model.backbone.body(images.tensors)
        feats = model.backbone.fpn(body)
        proposals, _ = model.rpn(images, feats)
        dets, _ = model.roi_heads(feats, proposals, images.image_sizes)
        # postprocess rescales the boxes and pastes the masks in place: keep copies.
        net = {k: v.numpy().copy() for k, v in dets[0].items()}
        if keypoint:
            heads = model.roi_heads
            pooled = heads.keypoint_roi_pool(feats, [dets[0]["boxes"]], images.image_sizes)
            heatmaps = heads.keypoint_predictor(heads.keypoint_head(pooled))
        final = model.transform.postprocess(dets, images.image_sizes, [image.shape[:2]])
    arrays = {f"stage{i}": nhwc(v) for i, v in enumerate(list(body.values())
                                                         + list(feats.values()))}
    arrays.update({
        "image": image, "molded": nhwc(images.tensors),
        "image_size": np.array(images.image_sizes[0]),
        "proposals": proposals[0].numpy(),
        "boxes": net["boxes"], "labels": net["labels"], "scores": net["scores"],
        "final_boxes": final[0]["boxes"].numpy(),
    })
    if keypoint:
        arrays.update({
            "keypoints": net["keypoints"], "keypoints_scores": net["keypoints_scores"],
            "heatmaps": nhwc(heatmaps),
            "final_keypoints": final[0]["keypoints"].numpy(),
        })
        np.savez(out_dir / "keypoint_reference.npz", **arrays)
    else:
        arrays.update({"mask_probs": net["masks"][:, 0],
                       "final_masks": final[0]["masks"][:, 0].numpy() > 0.5})
        np.savez(out_dir / ("reference_v2.npz" if v2 else "reference.npz"), **arrays)


if __name__ == "__main__":
    if "--resnext" in sys.argv[2:]:
        resnext_main(sys.argv[1])
    else:
        main(sys.argv[1], keypoint="--keypoint" in sys.argv[2:], v2="--v2" in sys.argv[2:])
