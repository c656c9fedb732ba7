"""mrcnn.precision: names -> Config.MIXED_PRECISION, "auto" from the CPU's flags; the
--precision option of samples/*/train.py."""

import pytest

from mrcnn import cli
from mrcnn.precision import (
    PRECISION_CHOICES,
    cpu_has_native_bfloat16,
    resolve_precision,
    warn_if_slow_training,
)

ZEN4 = ("processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2 avx512f "
        "avx512_bf16 avx512_vnni\n\nprocessor\t: 1\nflags\t\t: fpu sse2 avx2 avx512f "
        "avx512_bf16\n")
SPR = "flags\t\t: fpu avx512f amx_tile amx_bf16 amx_int8\n"
ZEN3 = "flags\t\t: fpu sse2 avx2 fma\n"
# A flag that only contains the name is not the flag.
LOOKALIKE = "flags\t\t: fpu avx512_bf16_not_really xavx512_bf16\n"


@pytest.mark.parametrize("text, native", [(ZEN4, True), (SPR, True), (ZEN3, False),
                                          (LOOKALIKE, False), ("", False)])
def test_native_bfloat16_is_read_from_the_cpu_flags(tmp_path, text, native):
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    assert cpu_has_native_bfloat16(str(path)) is native


def test_auto_picks_bfloat16_only_on_a_native_bfloat16_cpu_without_gpu(tmp_path):
    zen4, zen3 = tmp_path / "zen4", tmp_path / "zen3"
    zen4.write_text(ZEN4)
    zen3.write_text(ZEN3)
    assert resolve_precision("auto", str(zen4), has_gpu=False) == "mixed_bfloat16"
    assert resolve_precision("auto", str(zen4), has_gpu=True) is None
    assert resolve_precision("auto", str(zen3), has_gpu=False) is None
    assert resolve_precision("auto", str(tmp_path / "missing"), has_gpu=False) is None


def test_named_precisions_and_unknown_names():
    assert resolve_precision("float32") is None
    assert resolve_precision("mixed_bfloat16") == "mixed_bfloat16"
    assert resolve_precision("mixed_float16") == "mixed_float16"
    assert PRECISION_CHOICES == ("auto", "float32", "mixed_bfloat16", "mixed_float16")
    with pytest.raises(ValueError, match="precision must be one of .*got 'bf16'"):
        resolve_precision("bf16")


def test_precision_option_sets_the_config_and_set_still_wins(capsys):
    from samples.shapes import train as shapes_train

    task = cli.TrainingTask("shapes", shapes_train.ShapesTrainConfig,
                            shapes_train.ShapesInferenceConfig, None)

    class Data:
        num_classes = shapes_train.ShapesTrainConfig.NUM_CLASSES

    for argv, want in ((["--precision", "mixed_bfloat16"], "mixed_bfloat16"),
                       (["--precision", "float32"], None),
                       (["--precision", "mixed_bfloat16", "--set", "MIXED_PRECISION=None"],
                        None)):
        train_cls, infer_cls = cli._config_classes(task, shapes_train.parse_args(argv), Data())
        assert train_cls().MIXED_PRECISION == want and infer_cls().MIXED_PRECISION == want
    args = shapes_train.parse_args([])
    assert args.precision == "auto"  # the main job's default
    train_cls, _ = cli._config_classes(task, args, Data())
    assert train_cls().MIXED_PRECISION == resolve_precision("auto")
    with pytest.raises(SystemExit):
        shapes_train.parse_args(["--precision", "half"])
    assert "--precision: invalid choice: 'half'" in capsys.readouterr().err


def test_float16_training_without_gpu_warns_and_nothing_else_does(recwarn):
    with pytest.warns(UserWarning, match="mixed_bfloat16"):
        assert warn_if_slow_training("mixed_float16", has_gpu=False)
    assert not warn_if_slow_training("mixed_float16", has_gpu=True)
    for name in (None, "mixed_bfloat16"):
        assert not warn_if_slow_training(name, has_gpu=False)
    assert not recwarn.list
