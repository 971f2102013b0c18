"""argparse types shared by the command lines (`sqa_data`, `sqa_train`, `benchmarks/`): a count or a duration that is
not positive is refused at parsing, as `argument --num_proc: expected a positive integer, got '0'`, before any corpus,
model or audio is loaded. Each replaced a check of its own (or none): 0 used to mean "all" for some counts (words,
jobs, paragraphs), crash in range() or a worker pool for others, or fail only at the end of a benchmark. Also how
a list option's values are read (`list_items`)."""

import argparse
import math


def positive_int(text: str) -> int:
    """A count: `--num_proc`, `--max_words`, `--repeats`."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A duration or size: `--seconds` (a negative one used to cut a benchmark passage from its end)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def list_items(values) -> list[str]:
    """A list option's values, each of which may itself be a comma list: `--systems speechbert cascade` and
    `--systems speechbert,cascade` mean the same (`HfArgumentParser` list fields take the first form only)."""
    if isinstance(values, str):
        values = [values]
    return [part.strip() for value in values for part in str(value).split(",") if part.strip()]
