"""Compact spoken records -> a `datasets.DatasetDict` of questions, corpus statistics, and passage audio.

Usage:
    python -m sqa_data.dataset --records data/flite-squad --output_dir outputs/datasets/flite-squad [--with_audio]
    python -m sqa_data.dataset --records data/flite-squad --stats   # the statistics table only

Every row is one question with its passage: `id`, `title`, `paragraph_id`, `question`, `context`, `answers`
(`text`, `answer_start`, `start_time`, `end_time`, `has_asr_error`; times in seconds of the passage audio, -1 where an
answer has no spoken words), `answer_has_asr_error` (the first answer's), `ref_words` / `ref_starts` / `ref_ends`
(the words read, with forced-alignment times), `asr_words` / `asr_starts` / `asr_ends` (pocketsphinx), `wer`, `voice`,
`speed`, `audio_duration`, `spoken_text`, `audio_sha1`, `audio_paths` and `source`. Audio is regenerated from
`spoken_text`, `voice` and `speed` with flite (bit-exact, checked against `audio_sha1`) unless `audio_paths` names
files (concatenated in order: Spoken SQuAD stores one per sentence).
"""

import argparse
import gzip
import hashlib
import json
import os
import sys
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from .argtypes import positive_int
from .schema import features, question_row  # noqa: F401  (features is part of this module's interface)

SPLITS = ("train", "validation", "test")


def record_shards(path) -> list[Path]:
    """The `SPLIT-*.jsonl.gz` shards of a records folder (or of its `shards/` subfolder), in order."""
    path = Path(path)
    folder = path / "shards" if (path / "shards").is_dir() else path
    if not folder.is_dir():
        raise FileNotFoundError(f"{path} holds no shards folder")
    shards = sorted(folder.glob("*.jsonl.gz"))
    if not shards:
        raise FileNotFoundError(f"no *.jsonl.gz shards in {folder}")
    return shards


def read_records(path) -> dict[str, list[dict]]:
    """{split: [record, ...]} from a folder of `SPLIT-*.jsonl.gz` shards (or its `shards/` subfolder), in order."""
    records = defaultdict(list)
    shards = record_shards(path)
    for shard in shards:
        split = shard.name.split("-")[0]
        with gzip.open(shard, "rt", encoding="utf-8") as f:
            records[split].extend(json.loads(line) for line in f)
    if not records:
        raise FileNotFoundError(f"no *.jsonl.gz shards in {shards[0].parent}")
    return dict(records)


def records_fingerprint(path) -> str:
    """sha1 over the names and bytes of a records folder's shards: what a saved dataset was made from."""
    digest = hashlib.sha1()
    for shard in record_shards(path):
        digest.update(shard.name.encode() + b"\0" + hashlib.sha1(shard.read_bytes()).digest())
    return digest.hexdigest()


SOURCE_FILE = "records_source.json"  # beside dataset_dict.json: the records (and options) a saved dataset came from


def saved_from(output_dir, source: dict) -> bool:
    """True when OUTPUT_DIR holds a dataset saved from exactly `source` (records fingerprint and options)."""
    output_dir = Path(output_dir)
    marker = output_dir / SOURCE_FILE
    return ((output_dir / "dataset_dict.json").exists() and marker.exists()
            and json.loads(marker.read_text()) == source)


def question_rows(record: dict, source: str = "flite") -> list[dict]:
    """The question rows of one built paragraph (none for a failed one)."""
    if "failed" in record:
        return []
    rows = []
    for qa in record["qas"]:
        answers = {"text": [], "answer_start": [], "start_time": [], "end_time": [], "has_asr_error": []}
        for answer in qa["answers"]:
            if "start_time" in answer:  # a corpus that gives answer times itself
                start_time, end_time = answer["start_time"], answer["end_time"]
            elif answer["word_start"] >= 0 and record["ref_starts"]:
                start_time = record["ref_starts"][answer["word_start"]]
                end_time = record["ref_ends"][answer["word_end"]]
            else:
                start_time = end_time = -1.0
            answers["text"].append(answer["text"])
            answers["answer_start"].append(answer["answer_start"])
            answers["start_time"].append(float(start_time))
            answers["end_time"].append(float(end_time))
            answers["has_asr_error"].append(bool(answer.get("has_asr_error")))
        rows.append(question_row(record, qa, answers, source))
    return rows


def to_dataset_dict(records: dict[str, list[dict]], source: str = "flite"):
    """`datasets.DatasetDict` with one row per question, one split per key of `records`."""
    from datasets import Dataset, DatasetDict

    return DatasetDict({
        split: Dataset.from_list([row for record in recs for row in question_rows(record, source)],
                                 features=features())
        for split, recs in records.items()
    })


# ---------------------------------------------------------------------------------------------------- statistics
def statistics(records: dict[str, list[dict]]) -> dict:
    """Per split and overall: paragraphs (built / failed), questions, audio hours, corpus WER (errors over reference
    words) overall and per voice, and the share of answers whose words hold an ASR error."""

    def summarise(recs):
        built = [r for r in recs if "failed" not in r]
        ref_words = sum(len(r["ref_words"]) for r in built)
        errors = sum(r["wer"] * len(r["ref_words"]) for r in built)
        by_voice = defaultdict(lambda: [0.0, 0])
        for r in built:
            by_voice[r.get("voice", "")][0] += r["wer"] * len(r["ref_words"])
            by_voice[r.get("voice", "")][1] += len(r["ref_words"])
        answers = [a for r in built for qa in r["qas"] for a in qa["answers"][:1]]
        mapped = [a for a in answers if a.get("has_asr_error") is not None]
        return {
            "paragraphs": len(built),
            "failed_paragraphs": len(recs) - len(built),
            "questions": sum(len(r["qas"]) for r in built),
            "audio_hours": sum(r["audio_duration"] for r in built) / 3600,
            "wer": errors / ref_words if ref_words else float("nan"),
            "wer_by_voice": {v: e / n for v, (e, n) in sorted(by_voice.items()) if n},
            "answers_with_asr_errors": sum(a["has_asr_error"] for a in mapped) / len(mapped) if mapped else 0.0,
            "unmapped_answers": len(answers) - len(mapped),
        }

    stats = {split: summarise(recs) for split, recs in records.items()}
    stats["all"] = summarise([r for recs in records.values() for r in recs])
    return stats


def statistics_markdown(stats: dict) -> str:
    voices = sorted({v for s in stats.values() for v in s["wer_by_voice"]})
    header = ["split", "paragraphs", "failed", "questions", "hours", "WER"] + [f"WER {v}" for v in voices]
    header.append("answers with ASR errors")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    order = [s for s in (*SPLITS, "all") if s in stats]
    for split in order:
        s = stats[split]
        cells = [split, str(s["paragraphs"]), str(s["failed_paragraphs"]), str(s["questions"]),
                 f"{s['audio_hours']:.2f}", f"{100 * s['wer']:.1f}%"]
        cells += [f"{100 * s['wer_by_voice'][v]:.1f}%" if v in s["wer_by_voice"] else "-" for v in voices]
        cells.append(f"{100 * s['answers_with_asr_errors']:.1f}%")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- audio
def passage_audio(example: dict, cache_dir=None) -> np.ndarray:
    """The passage audio of a row (or record): read from `audio_paths` (concatenated), else regenerated with flite from
    `spoken_text`, `voice` and `speed` and checked against `audio_sha1`; cached as FLAC in `cache_dir` if given.
    A row with a non-zero `pitch_cents` (step-1 augmentation, `sqa_data.augment.pitch_rows`) gets that audio
    pitch-shifted by sox, duration kept, cached beside it."""
    import soundfile as sf

    cents = int(example.get("pitch_cents") or 0)
    if cents:
        from .speech import shift_pitch

        cached = (Path(cache_dir) / f"{example['audio_sha1']}.pitch{cents:+d}.flac"
                  if cache_dir and example.get("audio_sha1") else None)
        if cached is not None and cached.exists():
            audio, _ = sf.read(cached, dtype="float32")
            return audio
        audio = shift_pitch(passage_audio({**example, "pitch_cents": 0}, cache_dir), cents)
        if cached is not None:
            _write_flac_atomically(cached, audio)
            audio, _ = sf.read(cached, dtype="float32")  # the 16-bit samples every later read gets
        return audio
    return _unshifted_passage_audio(example, cache_dir)


def _write_flac_atomically(path: Path, audio: np.ndarray):
    """Several processes (DDP ranks, dataloader workers) may fill the cache at once: each writes its own temporary
    file and renames it atomically."""
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp.flac")
    sf.write(tmp, audio, 16000, subtype="PCM_16")
    os.replace(tmp, path)


def _unshifted_passage_audio(example: dict, cache_dir=None) -> np.ndarray:
    import soundfile as sf

    from .recipe import audio_checksum
    from .speech import read_audio, synthesize

    if example.get("audio_paths"):
        return np.concatenate([read_audio(path) for path in example["audio_paths"]])
    if not example.get("voice") or not example.get("spoken_text"):
        raise ValueError(f"example {example.get('paragraph_id')!r} has neither audio_paths nor flite settings")
    cached = Path(cache_dir) / f"{example['audio_sha1']}.flac" if cache_dir else None
    if cached is not None and cached.exists():
        audio, _ = sf.read(cached, dtype="float32")
        return audio
    audio = synthesize(example["spoken_text"], voice=example["voice"], duration_stretch=example["speed"])
    if example.get("audio_sha1") and audio_checksum(audio) != example["audio_sha1"]:
        raise RuntimeError(
            f"flite produced different audio for {example.get('paragraph_id')!r} than the word times were measured "
            "on (another flite version?): rebuild the corpus with sqa_data.build"
        )
    if cached is not None:
        _write_flac_atomically(cached, audio)
    return audio


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--records", required=True, help="folder of SPLIT-*.jsonl.gz shards (a build's output_dir)")
    parser.add_argument("--output_dir", help="save the DatasetDict here (save_to_disk, Arrow)")
    parser.add_argument("--with_audio", action="store_true",
                        help="also write every passage's audio as FLAC under OUTPUT_DIR/audio and set audio_paths")
    parser.add_argument("--stats", action="store_true", help="print the statistics table (markdown)")
    parser.add_argument("--num_proc", type=positive_int, default=os.cpu_count() or 1,
                        help="passages synthesised at once with --with_audio (default: the number of cores)")
    args = parser.parse_args(argv)
    if not args.output_dir and not args.stats:
        parser.error("nothing to do: give --output_dir and/or --stats")
    try:
        records = read_records(args.records)
    except FileNotFoundError as error:
        parser.exit(2, f"error: {error}\n")
    if args.stats:
        print(statistics_markdown(statistics(records)))
    source = args.output_dir and {"records": str(args.records), "records_sha1": records_fingerprint(args.records),
                                  "with_audio": args.with_audio}
    if source and saved_from(args.output_dir, source):
        print(f"{args.output_dir} is up to date with {args.records} (its {SOURCE_FILE}); not rebuilt", file=sys.stderr)
    elif source:
        if (Path(args.output_dir) / "dataset_dict.json").exists():
            print(f"{args.output_dir} was saved from other records or options than {args.records}"
                  f"{'' if args.with_audio else ' without --with_audio'}: rebuilding it", file=sys.stderr)
        if args.with_audio:
            from tqdm.auto import tqdm

            audio_dir = Path(args.output_dir) / "audio"
            todo = [r for recs in records.values() for r in recs if "failed" not in r and not r.get("audio_paths")]
            # A passage already in the cache (a resumed run) is not read back; the rest are synthesised. flite runs
            # as a subprocess and libsndfile releases the GIL, so threads use every core.
            missing = [r for r in todo if not (audio_dir / f"{r['audio_sha1']}.flac").exists()]
            with ThreadPoolExecutor(max_workers=args.num_proc) as pool:
                jobs = [pool.submit(passage_audio, record, audio_dir) for record in missing]
                for job in tqdm(as_completed(jobs), total=len(jobs), desc="audio", unit="paragraph"):
                    job.result()
            for record in todo:
                record["audio_paths"] = [str(audio_dir / f"{record['audio_sha1']}.flac")]
        (Path(args.output_dir) / SOURCE_FILE).unlink(missing_ok=True)  # not up to date until saved
        dataset = to_dataset_dict(records)
        dataset.save_to_disk(args.output_dir)
        (Path(args.output_dir) / SOURCE_FILE).write_text(json.dumps(source, indent=1) + "\n")
        print(f"saved {dataset} to {args.output_dir}", file=sys.stderr)


if __name__ == "__main__":
    main()
