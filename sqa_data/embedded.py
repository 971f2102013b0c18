"""The embedded default corpus: a few dozen built paragraphs shipped in `data/embedded/` for the quick start, the demo
and CI. Compact records only (no audio): flite regenerates the audio, bit for bit, from each record.

Usage:
    python -m sqa_data.embedded --records data/flite-squad --train 40 --validation 10 --test 10

Selection is fixed: the first N built train paragraphs (train order is a hash of the paragraph id, so they mix
articles), and N validation / test paragraphs spread evenly over those splits' built paragraphs.
"""

import argparse
import gzip
import json
from pathlib import Path

from .argtypes import positive_int
from .dataset import read_records, statistics, statistics_markdown, to_dataset_dict

EMBEDDED_DIR = Path(__file__).resolve().parents[1] / "data" / "embedded"

ATTRIBUTION = """# Embedded SpeechBERT corpus

{counts}: spoken versions of paragraphs from the SQuAD v1.1 development set (Rajpurkar, Zhang, Lopyrev and Liang,
"SQuAD: 100,000+ Questions for Machine Comprehension of Text", EMNLP 2016), licensed CC BY-SA 4.0; this derived data
is shared under the same licence. Audio is not stored: `sqa_data.dataset.passage_audio` regenerates it with flite
from `spoken_text`, `voice` and `speed`, checked against `audio_sha1`. Word times come from pocketsphinx (ASR) and
pocketsphinx forced alignment (reference words). Built with `python -m sqa_data.build`, selected with
`python -m sqa_data.embedded`.

{table}
"""


def select(records: dict[str, list[dict]], counts: dict[str, int]) -> dict[str, list[dict]]:
    chosen = {}
    for split, count in counts.items():
        built = [r for r in records.get(split, []) if "failed" not in r]
        if len(built) < count:
            raise ValueError(f"split {split!r} has {len(built)} built paragraphs, {count} wanted")
        if split == "train":
            chosen[split] = built[:count]
        else:
            step = len(built) / count
            chosen[split] = [built[int(i * step)] for i in range(count)]
    return chosen


def export(records_dir, counts: dict[str, int], out_dir=EMBEDDED_DIR):
    chosen = select(read_records(records_dir), counts)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, recs in chosen.items():
        with gzip.open(out_dir / f"{split}-00000.jsonl.gz", "wt", encoding="utf-8") as f:
            for record in recs:
                record = {k: v for k, v in record.items() if k != "timings"}
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
    stats = statistics(chosen)
    described = ", ".join(f"{len(v)} {k}" for k, v in chosen.items())
    (out_dir / "README.md").write_text(ATTRIBUTION.format(counts=f"{described} paragraphs",
                                                          table=statistics_markdown(stats)))
    return chosen


def load_embedded():
    """The embedded corpus as a `datasets.DatasetDict` (train / validation / test)."""
    return to_dataset_dict(read_records(EMBEDDED_DIR))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--records", required=True, help="a build's output_dir")
    parser.add_argument("--output_dir", default=str(EMBEDDED_DIR))
    for split, default in (("train", 40), ("validation", 10), ("test", 10)):
        parser.add_argument(f"--{split}", type=positive_int, default=default, help=f"{split} paragraphs")
    args = parser.parse_args(argv)
    chosen = export(args.records, {"train": args.train, "validation": args.validation, "test": args.test},
                    args.output_dir)
    print(statistics_markdown(statistics(chosen)))


if __name__ == "__main__":
    main()
