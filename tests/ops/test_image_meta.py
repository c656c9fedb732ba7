import numpy as np

from mrcnn.ops.image_meta import compose_image_meta, parse_image_meta, parse_image_meta_graph


def test_round_trip_numpy_and_graph():
    meta = compose_image_meta(7, (480, 640, 3), (1024, 1024, 3), (128, 0, 896, 1024), 1.6,
                              [1, 0, 1, 1])
    assert meta.shape == (12 + 4,)
    p = parse_image_meta(meta[None])
    assert p["image_id"].tolist() == [7]
    assert p["original_image_shape"].tolist() == [[480, 640, 3]]
    assert p["window"].tolist() == [[128, 0, 896, 1024]]
    assert p["active_class_ids"].tolist() == [[1, 0, 1, 1]]
    g = parse_image_meta_graph(meta[None].astype(np.float32))
    np.testing.assert_allclose(g["scale"], [1.6], rtol=1e-6)
    np.testing.assert_allclose(g["image_shape"], [[1024, 1024, 3]])


def test_active_class_ids_graph():
    from mrcnn.ops.image_meta import active_class_ids_graph

    meta = compose_image_meta(1, (4, 4, 3), (4, 4, 3), (0, 0, 4, 4), 1, [1, 0, 1])
    np.testing.assert_array_equal(active_class_ids_graph(meta[None].astype(np.float32)),
                                  [[1, 0, 1]])
