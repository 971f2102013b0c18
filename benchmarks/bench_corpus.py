"""Corpus building throughput: paragraphs per hour per core, scaling from 1 to 2 processes, and the real-time factors of
synthesis, recognition and forced alignment (core-seconds per second of audio).

Usage:
    python benchmarks/bench_corpus.py [--quick] [--paragraphs 8] [--squad_json ../shared/data/...]

The paragraphs are the first validation paragraphs of the SQuAD file (a short built-in passage with --quick),
built into temporary folders with `sqa_data.build`, once with --num_proc 1 and once with --num_proc 2.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS, positive_int, table, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SQUAD = ROOT.parent / "shared" / "data" / "squad-v1.1-dev" / "squad_v1.1_dev_42.json"
FALLBACK = ("The Normans were the people who in the tenth and eleventh centuries gave their name to Normandy, a region "
            "in France. They were descended from Norse raiders and pirates from Denmark, Iceland and Norway.")


def subset(squad_json, count, folder) -> Path:
    """A SQuAD file holding `count` validation paragraphs (so the build's split logic keeps them)."""
    from sqa_data.splits import VALIDATION_ARTICLES

    if squad_json and Path(squad_json).exists():
        data = json.loads(Path(squad_json).read_text())
        article = next(a for a in data["data"] if a["title"] == VALIDATION_ARTICLES[0])
        paragraphs = article["paragraphs"][:count]
    else:
        paragraphs = [{"context": FALLBACK, "qas": []} for _ in range(count)]
    path = Path(folder) / "subset.json"
    path.write_text(json.dumps({"version": "1.1", "data": [{"title": VALIDATION_ARTICLES[0],
                                                            "paragraphs": paragraphs}]}))
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 short built-in paragraphs")
    parser.add_argument("--paragraphs", type=positive_int, default=8)
    parser.add_argument("--squad_json", default=str(DEFAULT_SQUAD))
    parser.add_argument("--results", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.paragraphs, args.squad_json = 2, None
    from sqa_data.build import build

    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        squad = subset(args.squad_json, args.paragraphs, tmp)
        for num_proc in (1, 2):
            runs[num_proc] = build(squad, Path(tmp) / f"p{num_proc}", splits=("validation",), num_proc=num_proc,
                                   chunk_size=1, progress=False)
    one, two = runs[1], runs[2]
    audio_seconds = one["audio_hours"] * 3600
    stages = one["stage_core_seconds"]
    rows = [[stage, f"{stages.get(stage, 0.0):.1f}", f"{stages.get(stage, 0.0) / audio_seconds:.3f}"]
            for stage in ("synthesize", "recognize", "align")]
    rows.append(["all", f"{sum(stages.values()):.1f}", f"{sum(stages.values()) / audio_seconds:.3f}"])
    body = table(["stage", "core-seconds", "real-time factor (core-s per audio-s)"], rows)
    body += (f"\n\n{one['paragraphs_built']} paragraphs ({audio_seconds:.0f} s of audio, "
             f"{one['paragraphs_failed']} failed): **{one['paragraphs_per_hour']:.0f} paragraphs per hour with one "
             f"process, {two['paragraphs_per_hour']:.0f} with two** "
             f"({two['paragraphs_per_hour'] / one['paragraphs_per_hour']:.2f}x; wall {one['wall_seconds']:.0f} s "
             f"and {two['wall_seconds']:.0f} s, model loading included).")
    print(body)
    write_section("Corpus building" + (" (quick)" if args.quick else ""), body,
                  Path(args.results) if args.results else RESULTS)


if __name__ == "__main__":
    main()
