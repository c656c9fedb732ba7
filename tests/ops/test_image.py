import numpy as np
import pytest

from mrcnn.ops.image import pad_to_multiple, resize_image


def _image(h, w, dtype=np.uint8):
    return (np.arange(h * w * 3).reshape(h, w, 3) % 251).astype(dtype)


def test_square_upscales_and_pads_centered():
    out, window, scale, padding, crop = resize_image(_image(50, 100), min_dim=100, max_dim=256,
                                                     mode="square")
    assert out.shape == (256, 256, 3) and out.dtype == np.uint8
    assert scale == 2 and window == (78, 28, 178, 228) and crop is None
    assert padding == [(78, 78), (28, 28), (0, 0)]


def test_square_caps_long_side():
    out, window, scale, _, _ = resize_image(_image(100, 400), min_dim=200, max_dim=256)
    assert scale == pytest.approx(256 / 400) and out.shape == (256, 256, 3)
    assert window == (96, 0, 160, 256)


def test_none_mode_is_identity():
    img = _image(30, 40)
    out, window, scale, padding, crop = resize_image(img, mode="none")
    assert out is img and window == (0, 0, 30, 40) and scale == 1 and crop is None


def test_pad64_respects_max_dim_and_needs_no_min_dim_multiple():
    out, window, scale, _, _ = resize_image(_image(300, 1000), min_dim=100, max_dim=512,
                                            mode="pad64")
    assert scale == pytest.approx(0.512)
    assert out.shape[0] % 64 == 0 and out.shape[1] % 64 == 0 and max(out.shape[:2]) == 512
    assert window[2] - window[0] == 154 and window[3] - window[1] == 512


def test_crop_mode_returns_a_crop():
    rng = np.random.default_rng(0)
    out, window, scale, _, crop = resize_image(_image(100, 150), min_dim=64, max_dim=64,
                                               mode="crop", rng=rng)
    assert out.shape == (64, 64, 3) and window == (0, 0, 64, 64)
    y, x, h, w = crop
    np.testing.assert_array_equal(out, _image(100, 150)[y:y + h, x:x + w])


def test_unknown_mode_and_float_dtype():
    with pytest.raises(ValueError, match="not supported"):
        resize_image(_image(10, 10), mode="stretch")
    out, *_ = resize_image(_image(10, 10, np.float32), min_dim=20, max_dim=64)
    assert out.dtype == np.float32


def test_pad_to_multiple():
    out = pad_to_multiple([np.ones((70, 10, 3)), np.ones((20, 130, 3))])
    assert out.shape == (2, 128, 192, 3) and out[0, :70, :10].all() and not out[0, 70:].any()
