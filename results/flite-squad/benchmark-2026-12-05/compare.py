"""Does a rebuilt part of `make benchmark` reproduce the committed one? Compares two JSON files (codes.json,
metrics.json, settings.json) leaf by leaf and prints every number that differs by more than `--tolerance`, every
leaf only one side has, and a one-line verdict.

Usage (from the repository root):
    python results/flite-squad/benchmark-2026-12-05/compare.py \
        results/flite-squad/benchmark-2026-12-05/step1/codes.json outputs/benchmark/step1/codes.json [--tolerance 0.05]
"""

import argparse
import json
import math
import sys


def leaves(value, path=""):
    """(path, value) for every number, string or boolean inside nested dicts and lists."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, f"{path}[{index}]")
    else:
        yield path, value


def compare(committed: dict, rebuilt: dict, tolerance: float) -> tuple[list[str], int]:
    """Lines naming each difference, and how many leaves were compared."""
    old, new = dict(leaves(committed)), dict(leaves(rebuilt))
    lines = [f"only in the committed file: {path} = {old[path]!r}" for path in old if path not in new]
    lines += [f"only in the rebuilt file: {path} = {new[path]!r}" for path in new if path not in old]
    for path in old.keys() & new.keys():
        a, b = old[path], new[path]
        numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
        if numbers and not (math.isnan(a) and math.isnan(b)):
            if abs(a - b) > tolerance:
                lines.append(f"{path}: {a} -> {b} ({b - a:+.4g})")
        elif a != b:
            lines.append(f"{path}: {a!r} -> {b!r}")
    return sorted(lines), len(old.keys() & new.keys())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("committed")
    parser.add_argument("rebuilt")
    parser.add_argument("--tolerance", type=float, default=0.0,
                        help="numbers closer than this count as equal (0: to the digit stored)")
    args = parser.parse_args(argv)
    if args.tolerance < 0:
        parser.error(f"--tolerance {args.tolerance}: expected a number >= 0")
    with open(args.committed) as a, open(args.rebuilt) as b:
        lines, compared = compare(json.load(a), json.load(b), args.tolerance)
    if lines:
        print("\n".join(lines))
    verdict = "the same" if not lines else f"{len(lines)} differences"
    print(f"{args.rebuilt} against {args.committed}: {compared} leaves compared, {verdict} "
          f"(tolerance {args.tolerance})")
    return 0 if not lines else 1


if __name__ == "__main__":
    sys.exit(main())
