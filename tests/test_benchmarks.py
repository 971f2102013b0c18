"""Every benchmark script runs in --quick mode and prints and records its figures (timings themselves are not tested:
they belong in benchmarks/RESULTS.md, measured by the full runs)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import need_binaries

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = {
    "bench_train_step.py": ("Training step: SpeechBERT vs BERT (quick)", "time ratio"),
    "bench_inference.py": ("Inference and feature extraction (quick)", "real time per core"),
    "bench_corpus.py": ("Corpus building (quick)", "paragraphs per hour"),
    "bench_gpu.py": ("GPU training throughput (quick)", "sequences/s"),
    "bench_pipeline_memory.py": ("Pipeline peak memory against questions (quick)", "more peak RSS per question"),
    "bench_segmenter.py": ("Word segmenter against ASR segments (quick)", "ASR path / this"),
    "bench_step1.py": ("Step-1 step: whole vocabulary against sampled softmax (quick)", "speed-up"),
    "bench_frozen_finetune.py": ("Frozen-encoder fine-tuning step (quick)", "speed-up"),
    "bench_latency_budget.py": ("Latency budget without ASR (quick)", "of budget"),
}

# Options whose rows a quick run shows too.
EXTRA_ARGS = {"bench_segmenter.py": ("--soft_top_k", "8", "--recipe", "--config_overrides", "segmenter_num_layers=5")}
EXTRA_ROWS = {"bench_segmenter.py": ("soft word embedding over each code's top 8 pieces", "top 8 pieces, CPU bf16",
                                     "Where the time of one call goes", "| audio encoder (RNN over the segments) |",
                                     "CPU bf16 autocast, int8 audio encoder |",
                                     # the stand-in's shapes: the recipe's, then --config_overrides over them
                                     "audio_encoder_hidden_size=256", "segmenter_hidden_size=96",
                                     "segmenter_num_layers=5`"),
              "bench_latency_budget.py": ("with PyTorch's `nn.Conv1d` over (B, C, T) frames", "bf16 ")}


@pytest.mark.slow
@pytest.mark.parametrize("script", list(SCRIPTS))
def test_quick_run_prints_and_records(tmp_path, script):
    if script in ("bench_corpus.py", "bench_segmenter.py"):
        need_binaries("flite")
    results = tmp_path / "RESULTS.md"
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    extra = EXTRA_ARGS.get(script, ())
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--quick", "--results", str(results),
                             *extra],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip(), "the script printed nothing"
    section, phrase = SCRIPTS[script]
    text = results.read_text()
    assert f"## {section}" in text and phrase in text and "Measured " in text and "Command: `python " in text
    for row in EXTRA_ROWS.get(script, ()):
        assert row in text, f"{script} {' '.join(extra)}: no row {row!r}"


@pytest.mark.parametrize("argv, message", [
    (["--model", "outputs/x", "--recipe"], "--model outputs/x is a trained checkpoint"),
    (["--config_overrides", "segmenter_num_layers=5", "--model", "outputs/x"], "shape the stand-in model"),
    (["--config_overrides", "segmenter_hidden_size"], "expected key=value pairs"),
    (["--config_overrides", "segmenter_threshold=2"], "segmenter_threshold"),
])
def test_segmenter_benchmark_checks_its_stand_in_shapes_before_any_speech(argv, message, monkeypatch, capsys):
    sys.path.insert(0, str(ROOT))
    from benchmarks import bench_segmenter

    monkeypatch.setattr(bench_segmenter, "spoken_passage", lambda seconds: pytest.fail("speech made before the check"))
    with pytest.raises(SystemExit) as exit_info:
        bench_segmenter.main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_sections_are_replaced_not_duplicated(tmp_path):
    sys.path.insert(0, str(ROOT))
    from benchmarks.common import write_section

    results = tmp_path / "RESULTS.md"
    write_section("A", "first", results)
    write_section("B", "other", results)
    write_section("A", "second", results)
    text = results.read_text()
    assert text.count("## A") == 1 and "second" in text and "first" not in text and "## B" in text


def test_command_names_the_script_relative_to_the_repository(monkeypatch):
    sys.path.insert(0, str(ROOT))
    from benchmarks import common

    monkeypatch.setattr(sys, "argv", [str(ROOT / "benchmarks" / "bench_inference.py"), "--quick"])
    assert common.command() == "python benchmarks/bench_inference.py --quick"
    monkeypatch.setattr(sys, "argv", ["/elsewhere/main/x.py"])
    assert common.command() == "python /elsewhere/main/x.py"


@pytest.mark.parametrize("script, argv, message", [
    ("bench_segmenter", ["--repeats", "0"], "argument --repeats: expected a positive integer, got '0'"),
    ("bench_segmenter", ["--asr_repeats", "-1"], "argument --asr_repeats: expected a positive integer, got '-1'"),
    ("bench_segmenter", ["--seconds", "-5"], "argument --seconds: expected a positive number, got '-5'"),
    ("bench_segmenter", ["--soft_top_k", "0"], "argument --soft_top_k: expected a positive integer, got '0'"),
    ("bench_inference", ["--seconds", "nan"], "argument --seconds: expected a positive number, got 'nan'"),
    ("bench_latency_budget", ["--repeats", "2.5"], "argument --repeats: expected a positive integer, got '2.5'"),
    ("bench_pipeline_memory", ["--questions", "1", "0"], "argument --questions: expected a positive integer"),
    ("bench_train_step", ["--repeats", "0"], "argument --repeats: expected a positive integer"),
    ("bench_train_step", ["--batches", "8", "0"], "argument --batches: expected a positive integer, got '0'"),
    ("bench_train_step", ["--frame_stacks", "0"], "argument --frame_stacks: expected a positive integer, got '0'"),
    ("bench_inference", ["--frame_stacks", "3", "-1"], "argument --frame_stacks: expected a positive integer"),
    ("bench_gpu", ["--batch", "0"], "argument --batch: expected a positive integer, got '0'"),
    ("bench_corpus", ["--paragraphs", "0"], "argument --paragraphs: expected a positive integer, got '0'"),
    ("bench_frozen_finetune", ["--top_k", "0"], "argument --top_k: expected a positive integer, got '0'"),
    ("bench_frozen_finetune", ["--segments", "-3"], "argument --segments: expected a positive integer, got '-3'"),
])
def test_counts_and_durations_are_checked_before_any_work(script, argv, message, capsys):
    """A zero count used to fail at the end ("no median for empty data") and a negative duration to cut the passage
    from its end: argparse names both at once."""
    import importlib

    sys.path.insert(0, str(ROOT))
    module = importlib.import_module(f"benchmarks.{script}")
    with pytest.raises(SystemExit) as exit_info:
        module.main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_median_seconds_needs_a_repeat():
    sys.path.insert(0, str(ROOT))
    from benchmarks.common import median_seconds

    assert median_seconds(lambda: None, 1, warmup=0) >= 0
    with pytest.raises(ValueError, match="repeats must be >= 1, got 0"):
        median_seconds(lambda: None, 0)
