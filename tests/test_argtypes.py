"""The shared argparse types (`sqa_data.argtypes`) and the command lines that take counts through them: every count
that is not a positive integer is refused at parsing, named with its value, before any corpus, model or audio."""

import argparse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sqa_data.argtypes import positive_float, positive_int


@given(st.integers(min_value=1, max_value=10**12))
def test_positive_int_keeps_every_positive_count(value):
    assert positive_int(str(value)) == value


@given(st.integers(max_value=0))
def test_positive_int_refuses_zero_and_negatives(value):
    with pytest.raises(argparse.ArgumentTypeError, match=f"expected a positive integer, got '{value}'"):
        positive_int(str(value))


@pytest.mark.parametrize("text", ["2.5", "", "ten", "1e3", "nan"])
def test_positive_int_refuses_what_is_not_an_integer(text):
    with pytest.raises(argparse.ArgumentTypeError, match="expected a positive integer"):
        positive_int(text)


@given(st.floats(min_value=1e-9, max_value=1e9, allow_nan=False))
def test_positive_float_keeps_positive_numbers(value):
    assert positive_float(repr(value)) == value


@pytest.mark.parametrize("text", ["0", "-5", "nan", "inf", "-inf", "five"])
def test_positive_float_refuses_zero_negative_nan_and_infinity(text):
    with pytest.raises(argparse.ArgumentTypeError, match=f"expected a positive number, got '{text}'"):
        positive_float(text)


def _refused(main, argv, option, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert f"argument {option}: expected a positive integer, got '{value}'" in capsys.readouterr().err


@pytest.mark.parametrize("split, count", [("test", "-3"), ("validation", "0"), ("train", "-5")])
def test_embedded_export_counts(tmp_path, capsys, split, count):
    """`--test -3` wrote an empty test split, `--validation 0` divided by zero, `--train -5` kept all but five."""
    from sqa_data.embedded import main

    _refused(main, ["--records", str(tmp_path / "none"), "--output_dir", str(tmp_path / "out"), f"--{split}", count],
             f"--{split}", count, capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option", ["--num_proc", "--chunk_size"])
def test_build_counts(tmp_path, capsys, option):
    from sqa_data.build import main

    _refused(main, ["--squad_json", str(tmp_path / "none.json"), "--output_dir", str(tmp_path / "out"), option, "0"],
             option, "0", capsys)
    assert not (tmp_path / "out").exists()


def test_dataset_num_proc(tmp_path, capsys):
    from sqa_data.dataset import main

    _refused(main, ["--records", str(tmp_path / "none"), "--output_dir", str(tmp_path / "out"), "--num_proc", "-2"],
             "--num_proc", "-2", capsys)
    assert not (tmp_path / "out").exists()
