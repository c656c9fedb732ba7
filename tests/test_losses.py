import numpy as np
import pytest

from mrcnn import losses as L


def _softmax_ce(logits, label):
    z = logits - logits.max()
    return -(z[label] - np.log(np.exp(z).sum()))


def _smooth_l1(d):
    d = abs(d)
    return 0.5 * d * d if d < 1 else d - 0.5


@pytest.fixture
def rng():
    return np.random.default_rng(5)


def test_smooth_l1_hand_values():
    out = np.asarray(L.smooth_l1_loss(np.zeros(4), np.array([0.5, -0.5, 2.0, -3.0])))
    np.testing.assert_allclose(out, [0.125, 0.125, 1.5, 2.5])


def test_rpn_class_loss(rng):
    match = rng.choice([-1, 0, 1], (2, 50, 1))
    logits = rng.normal(size=(2, 50, 2)).astype(np.float32)
    terms = [_softmax_ce(logits[b, a], int(match[b, a, 0] == 1))
             for b in range(2) for a in range(50) if match[b, a, 0] != 0]
    assert float(L.rpn_class_loss_graph(match, logits)) == pytest.approx(np.mean(terms), 1e-5)


def test_rpn_bbox_loss_uses_kth_target_for_kth_positive(rng):
    match = rng.choice([-1, 0, 1], (2, 40, 1), p=[0.4, 0.4, 0.2])
    target = rng.normal(size=(2, 16, 4)).astype(np.float32)
    pred = rng.normal(size=(2, 40, 4)).astype(np.float32)
    terms = []
    for b in range(2):
        for k, a in enumerate(np.where(match[b, :, 0] == 1)[0][:16]):
            terms += [_smooth_l1(target[b, k, j] - pred[b, a, j]) for j in range(4)]
    got = float(L.rpn_bbox_loss_graph(None, target, match, pred))
    assert got == pytest.approx(np.mean(terms), 1e-5)


def test_mrcnn_class_loss_per_image_active_ids_and_padding(rng):
    target = rng.integers(0, 4, (2, 10))
    logits = rng.normal(size=(2, 10, 4)).astype(np.float32)
    active = np.array([[1, 1, 0, 1], [1, 0, 1, 1]], np.float32)
    valid = np.ones((2, 10), np.float32)
    valid[1, 7:] = 0
    num = den = 0.0
    for b in range(2):
        for r in range(10):
            w = active[b, logits[b, r].argmax()] * valid[b, r]
            num += w * _softmax_ce(logits[b, r], target[b, r])
            den += w
    got = float(L.mrcnn_class_loss_graph(target, logits, active, valid))
    assert got == pytest.approx(num / den, 1e-5)


def test_mrcnn_bbox_loss(rng):
    target_ids = rng.integers(0, 3, (2, 8))
    target = rng.normal(size=(2, 8, 4)).astype(np.float32)
    pred = rng.normal(size=(2, 8, 3, 4)).astype(np.float32)
    terms = [_smooth_l1(target[b, r, j] - pred[b, r, target_ids[b, r], j])
             for b in range(2) for r in range(8) if target_ids[b, r] > 0 for j in range(4)]
    got = float(L.mrcnn_bbox_loss_graph(target, target_ids, pred))
    assert got == pytest.approx(np.mean(terms), 1e-5)


def test_mrcnn_mask_loss(rng):
    target_ids = rng.integers(0, 3, (2, 5))
    target = (rng.uniform(size=(2, 5, 6, 6)) > 0.5).astype(np.float32)
    pred = rng.uniform(0.01, 0.99, (2, 5, 6, 6, 3)).astype(np.float32)
    terms = []
    for b in range(2):
        for r in range(5):
            c = target_ids[b, r]
            if c > 0:
                p, y = pred[b, r, :, :, c], target[b, r]
                terms.append(-(y * np.log(p) + (1 - y) * np.log(1 - p)))
    got = float(L.mrcnn_mask_loss_graph(target, target_ids, pred))
    assert got == pytest.approx(np.mean(terms), 1e-5)


def test_losses_are_zero_not_nan_without_positives():
    zeros = np.zeros((1, 4), np.int32)
    assert float(L.mrcnn_bbox_loss_graph(np.zeros((1, 4, 4)), zeros,
                                         np.ones((1, 4, 2, 4), np.float32))) == 0
    assert float(L.mrcnn_mask_loss_graph(np.zeros((1, 4, 2, 2)), zeros,
                                         np.full((1, 4, 2, 2, 2), 0.5, np.float32))) == 0
    assert float(L.rpn_bbox_loss_graph(None, np.zeros((1, 2, 4)), np.zeros((1, 3, 1)),
                                       np.ones((1, 3, 4), np.float32))) == 0
    assert float(L.rpn_class_loss_graph(np.zeros((1, 3, 1)), np.ones((1, 3, 2)))) == 0


def test_weight_decay_excludes_gamma_beta():
    import keras

    bn = keras.layers.BatchNormalization()
    dense = keras.layers.Dense(2)
    model = keras.Sequential([keras.Input((3,)), dense, bn])
    expected = 0.5 * 0.1 * sum(float(np.sum(np.asarray(w) ** 2)) for w in dense.weights)
    got = float(L.l2_weight_decay(model.trainable_weights, 0.1))
    assert got == pytest.approx(expected, 1e-6)
