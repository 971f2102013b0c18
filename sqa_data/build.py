"""Build a Spoken SQuAD-style corpus from any SQuAD-format JSON, offline: flite speech, pocketsphinx ASR and forced
alignment, WER and ASR-error flags per answer.

Usage:
    python -m sqa_data.build --squad_json ../shared/data/squad-v1.1-dev/squad_v1.1_dev_42.json \
        --output_dir data/flite-squad --splits test validation train --max_paragraphs train=800 --num_proc 2

The compact results (words, times, WER, voice, speed; no audio) go to `OUTPUT_DIR/shards/SPLIT-NNNNN.jsonl.gz`,
`--chunk_size` paragraphs a shard, each written atomically once all its paragraphs are done. A killed build restarts
where it stopped: finished shards are never rewritten. A paragraph that fails is recorded in its shard with its stage
and reason, and counted. `python -m sqa_data.dataset` turns the shards into a `datasets.DatasetDict`.
"""

import argparse
import gzip
import hashlib
import json
import multiprocessing
import os
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from tqdm.auto import tqdm

from .argtypes import positive_int
from .recipe import SPEEDS, StageError, build_paragraph
from .schema import failed_record
from .speech import FLITE_VOICES, require_binary
from .splits import split_paragraphs

BUILD_VERSION = 1


def shard_path(output_dir: Path, split: str, index: int) -> Path:
    return output_dir / "shards" / f"{split}-{index:05d}.jsonl.gz"


def write_atomically(path: Path, lines: list[dict]):
    """Write a gzip JSONL file through a temporary name: a reader sees the whole shard or none of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def read_shard(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


_RECOGNIZER = None


def _die_with_parent():
    """Linux: a worker gets SIGTERM when the build process dies, even by SIGKILL, instead of running on orphaned."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def _init_worker(in_pool=True):
    global _RECOGNIZER
    from .speech import SpeechRecognizer

    if in_pool:  # never in the main process: it would die with the shell that started it (nohup or not)
        _die_with_parent()
    _RECOGNIZER = SpeechRecognizer()


def _build_chunk(task):
    """Worker: build every item of one chunk with `build_one(item, recognizer)` and write its shard. An item that
    fails a stage becomes a record saying which stage and why."""
    path, items, build_one = task
    records = []
    for item in items:
        try:
            records.append(build_one(item, _RECOGNIZER))
        except StageError as error:
            records.append(failed_record(item["paragraph_id"], item["title"], error.stage, error.reason))
    write_atomically(Path(path), records)
    return records


def map_chunks(build_one, tasks, num_proc=1):
    """Build `tasks` ((shard path, items) pairs) with `build_one`, a module-level function, in `num_proc` spawned
    workers (or in this process), each holding one recognizer; yields each chunk's records as its shard is written.
    Closing the generator stops the workers."""
    tasks = [(path, items, build_one) for path, items in tasks]
    if num_proc <= 1:
        _init_worker(in_pool=False)
        yield from map(_build_chunk, tasks)
        return
    pool = multiprocessing.get_context("spawn").Pool(num_proc, initializer=_init_worker)
    try:
        yield from pool.imap_unordered(_build_chunk, tasks)
    finally:
        pool.terminate()


def check_build_config(output_dir: Path, config: dict):
    """A resumed build must use the settings the finished shards were made with."""
    path = output_dir / "build_config.json"
    if path.exists():
        previous = json.loads(path.read_text())
        changed = {k: (previous.get(k), v) for k, v in config.items() if previous.get(k) != v}
        if changed:
            raise SystemExit(f"{output_dir} was built with other settings {changed} (old, new): use a new --output_dir")
    else:
        output_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(config, indent=2) + "\n")


def parse_limits(values: list[str]) -> dict[str, int]:
    limits = {}
    for value in values or []:
        split, _, number = value.partition("=")
        if not number.isdigit():
            raise argparse.ArgumentTypeError(f"--max_paragraphs takes SPLIT=N, got {value!r}")
        limits[split] = int(number)
    return limits


def build(squad_json, output_dir, splits=("test", "validation", "train"), max_paragraphs=None, num_proc=1,
          chunk_size=8, progress=True) -> dict:
    """Build (or resume) the shards of `splits`; returns the counts and per-stage timings of this run."""
    require_binary("flite", "flite")
    require_binary("espeak-ng", "espeak-ng")
    output_dir = Path(output_dir)
    squad_json = Path(squad_json)
    source_sha1 = hashlib.sha1(squad_json.read_bytes()).hexdigest()
    check_build_config(output_dir, {
        "build_version": BUILD_VERSION, "chunk_size": chunk_size, "voices": list(FLITE_VOICES),
        "speeds": list(SPEEDS), "source_sha1": source_sha1,
    })
    for stale in (output_dir / "shards").glob(".*.tmp"):
        stale.unlink()  # a shard a killed run was writing: its paragraphs are built again
    by_split = split_paragraphs(json.loads(squad_json.read_text()))
    max_paragraphs = max_paragraphs or {}
    tasks, skipped = [], Counter()
    for split in splits:
        if split not in by_split:
            raise ValueError(f"unknown split {split!r}: expected one of {sorted(by_split)}")
        paragraphs = by_split[split][: max_paragraphs.get(split, len(by_split[split]))]
        for index in range(0, len(paragraphs), chunk_size):
            path = shard_path(output_dir, split, index // chunk_size)
            chunk = paragraphs[index : index + chunk_size]
            if path.exists():
                skipped[split] += len(chunk)
            else:
                tasks.append((str(path), chunk))
    todo = sum(len(chunk) for _, chunk in tasks)
    print(f"{squad_json.name} -> {output_dir}: {todo} paragraphs to build, {sum(skipped.values())} already done "
          f"({dict(skipped)})", file=sys.stderr)
    stats = {"built": Counter(), "failed": Counter(), "failure_stages": Counter(), "timings": defaultdict(float),
             "audio_seconds": 0.0}
    start = time.perf_counter()
    bar = tqdm(total=todo, unit="paragraph", disable=not progress, dynamic_ncols=True)
    results = map_chunks(build_paragraph, tasks, num_proc)
    try:
        for records in results:
            for record in records:
                if "failed" in record:
                    stats["failed"][record["title"]] += 1
                    stats["failure_stages"][record["failed"]["stage"]] += 1
                else:
                    stats["built"][record["title"]] += 1
                    stats["audio_seconds"] += record["audio_duration"]
                    for stage, seconds in record["timings"].items():
                        stats["timings"][stage] += seconds
            bar.update(len(records))
    finally:
        bar.close()
        results.close()  # stops the workers
    elapsed = time.perf_counter() - start
    built, failed = sum(stats["built"].values()), sum(stats["failed"].values())
    summary = {
        "paragraphs_built": built,
        "paragraphs_failed": failed,
        "failure_stages": dict(stats["failure_stages"]),
        "audio_hours": round(stats["audio_seconds"] / 3600, 3),
        "wall_seconds": round(elapsed, 1),
        "stage_core_seconds": {k: round(v, 1) for k, v in stats["timings"].items()},
        "num_proc": num_proc,
    }
    if built:
        core = sum(stats["timings"].values())
        summary["core_seconds_per_audio_second"] = round(core / stats["audio_seconds"], 4)
        summary["paragraphs_per_hour"] = round(3600 * (built + failed) / elapsed, 1)
    print(json.dumps(summary, indent=2), file=sys.stderr)
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--squad_json", required=True, help="SQuAD-format JSON (version 1.1 layout)")
    parser.add_argument("--output_dir", required=True, help="where shards and build_config.json go")
    parser.add_argument("--splits", nargs="+", default=["test", "validation", "train"],
                        help="splits to build, in this order (see sqa_data/splits.py)")
    parser.add_argument("--max_paragraphs", nargs="*", default=[], metavar="SPLIT=N",
                        help="build only the first N paragraphs of a split (its order is fixed), e.g. train=800")
    parser.add_argument("--num_proc", type=positive_int, default=1, help="parallel worker processes")
    parser.add_argument("--chunk_size", type=positive_int, default=8,
                        help="paragraphs per shard (fixed for an output_dir)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if not Path(args.squad_json).is_file():
        parser.error(f"--squad_json {args.squad_json} is not a file")
    try:
        limits = parse_limits(args.max_paragraphs)
        build(args.squad_json, args.output_dir, args.splits, limits, args.num_proc, args.chunk_size,
              progress=not args.no_progress)
    except (RuntimeError, ValueError, argparse.ArgumentTypeError) as error:
        parser.exit(2, f"error: {error}\n")


if __name__ == "__main__":
    main()
