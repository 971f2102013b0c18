"""run_pretraining.py and run_sqa.py: metric arithmetic by hand, post-processing, few-step runs of every script on a
tiny spoken corpus with tiny models, resuming, and a two-process (gloo) run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sqa_train.postprocess import ensemble_scores, predict_spans, speechbert_word_scores, text_word_scores

ROOT = Path(__file__).resolve().parents[1]
METRIC = ROOT / "metrics" / "spoken_squad_qa"


# ----------------------------------------------------------------------------------------- metric arithmetic
@pytest.fixture(scope="module")
def metric():
    import evaluate

    return evaluate.load(str(METRIC))


def reference(qid, texts, spans, wer=0.15, error=False):
    return {"id": qid, "answers": {"text": texts, "start_time": [s for s, _ in spans], "end_time": [e for _, e in spans]},
            "wer": wer, "has_asr_error": error}


def prediction(qid, text, start=-1.0, end=-1.0):
    return {"id": qid, "prediction_text": text, "start_time": start, "end_time": end}


def test_metric_by_hand(metric):
    result = metric.compute(
        predictions=[prediction("a", "the normans of france", 1.0, 2.0), prediction("b", "river", 3.0, 3.5),
                     prediction("c", "king", 0.0, 1.0)],
        references=[reference("a", ["Normans", "normans of"], [(1.5, 2.5)], wer=0.05),
                    reference("b", ["the river"], [(3.0, 3.5)], wer=0.25, error=True),
                    reference("c", ["queen"], [(5.0, 6.0)], wer=0.55, error=True)],
    )
    overall = result["overall"]
    # a: EM 0; F1 best vs "normans of": p=2/3, r=1 -> 0.8; AOS 0.5/1.5; FF1 p=r=0.5 -> 0.5
    # b: EM 1 ("the" is dropped); F1 1; AOS 1; FF1 1.   c: all 0.
    assert overall["count"] == 3
    assert overall["exact_match"] == pytest.approx(100 / 3)
    assert overall["f1"] == pytest.approx(100 * (0.8 + 1) / 3)
    assert overall["aos"] == pytest.approx(100 * (1 / 3 + 1) / 3)
    assert overall["frame_f1"] == pytest.approx(100 * (0.5 + 1) / 3)
    buckets = result["wer_buckets"]
    assert [buckets[k]["count"] for k in buckets] == [1, 0, 1, 0, 1]
    assert list(buckets) == ["[0%, 10%)", "[10%, 20%)", "[20%, 30%)", "[30%, 40%)", "[40%, inf)"]
    assert buckets["[20%, 30%)"]["f1"] == 100 and buckets["[10%, 20%)"]["f1"] is None
    assert result["answers_with_asr_errors"]["count"] == 2
    assert result["answers_with_asr_errors"]["exact_match"] == 50


def test_metric_edges_unknown_wer_and_missing_predictions(metric):
    result = metric.compute(
        predictions=[prediction("a", "x"), prediction("b", "y", 1.0, 2.0)],
        references=[reference("a", ["x"], [(-1.0, -1.0)], wer=-1.0), reference("b", ["y"], [(1.0, 2.0)], wer=0.3)],
        wer_bucket_edges=[0.3],
    )
    assert result["overall"]["count"] == 2 and result["overall"]["aos"] == 100  # a has no gold span: not scored
    assert {k: v["count"] for k, v in result["wer_buckets"].items()} == {"[0%, 30%)": 0, "[30%, inf)": 1}
    with pytest.raises(ValueError, match="1 references have no prediction"):
        metric.compute(predictions=[prediction("a", "x"), prediction("b", "x")],
                       references=[reference("a", ["x"], [(0, 1)]), reference("z", ["x"], [(0, 1)])])


@pytest.mark.parametrize("predictions, references, edges, message", [
    # the second prediction of "a" used to win without a word, a reference given twice to count twice
    # (evaluate itself only checks that the two lists are equally long)
    ([prediction("a", "x"), prediction("a", "y")], [reference("a", ["x"], [(0, 1)])] * 2, [0.3],
     r"1 ids appear more than once in predictions, e.g. \['a'\]"),
    ([prediction("a", "x"), prediction("b", "x")], [reference("a", ["x"], [(0, 1)])] * 2, [0.3],
     "1 ids appear more than once in references"),
    # edges out of order named a bucket [30%, 10%) and left the questions between them in none
    ([prediction("a", "x")], [reference("a", ["x"], [(0, 1)])], [0.3, 0.1], r"wer_bucket_edges .* got \[0.3, 0.1\]"),
    ([prediction("a", "x")], [reference("a", ["x"], [(0, 1)])], [0.0, 0.2], r"got \[0.0, 0.2\]"),
    ([prediction("a", "x")], [reference("a", [], [])], [0.3], r"1 references have no answer text, e.g. \['a'\]"),
])
def test_metric_refuses_inputs_that_would_score_wrongly(metric, predictions, references, edges, message):
    with pytest.raises(ValueError, match=message):
        metric.compute(predictions=predictions, references=references, wer_bucket_edges=edges)


# ----------------------------------------------------------------------------------------- post-processing
def test_word_scores_take_the_best_window_and_spans_follow():
    # Two SpeechBERT windows over 5 segments (0-2 and 2-4), question of 1 piece: audio starts at position 3.
    items = [{"input_ids": [0] * 7, "example": 0, "seg_start": 0, "seg_end": 3, "audio_offset": 3},
             {"input_ids": [0] * 7, "example": 0, "seg_start": 2, "seg_end": 5, "audio_offset": 3}]
    start = np.full((2, 8), -5.0)
    end = np.full((2, 8), -5.0)
    start[1, 3 + 1] = 5.0  # segment 3 in window 2
    end[1, 3 + 2] = 5.0  # segment 4
    scores = speechbert_word_scores(items, start, end, {0: 5})
    s, e = scores[0]
    assert np.argmax(s) == 3 and np.argmax(e) == 4 and np.isfinite(s).all()
    words = {0: ["a", "b", "c", "d", "e"]}
    times = {0: np.array([[0, 1], [1, 2], [2, 3], [3, 4], [4, 5]], float)}
    found = predict_spans(scores, words, times, max_answer_words=30)[0]
    assert (found["prediction_text"], found["start_time"], found["end_time"]) == ("d e", 3.0, 5.0)
    assert predict_spans(scores, words, times, max_answer_words=1)[0]["word_end"] == \
        predict_spans(scores, words, times, max_answer_words=1)[0]["word_start"]


def test_text_word_scores_use_first_and_last_piece():
    # [CLS] q [SEP] w0 w1a w1b w2 [SEP]: word 1 has two pieces.
    items = [{"token_word": np.array([-1, -1, -1, 0, 1, 1, 2, -1]), "example": 0}]
    start = np.zeros((1, 8))
    end = np.zeros((1, 8))
    start[0, 5] = 9.0  # second piece of word 1 cannot start it
    start[0, 4] = 4.0
    end[0, 4] = 9.0  # first piece of word 1 cannot end it
    end[0, 5] = 4.0
    s, e = text_word_scores(items, start, end, {0: 3})[0]
    assert np.argmax(s) == 1 and np.argmax(e) == 1
    assert s[1] == pytest.approx(4.0 - np.log(np.exp(np.r_[np.zeros(6), 9.0, 4.0]).sum()))


def test_ensemble_weights():
    a = {0: (np.array([0.0, -9.0]), np.array([0.0, -9.0]))}
    b = {0: (np.array([-9.0, 0.0]), np.array([-9.0, 0.0])), 1: (np.zeros(1), np.zeros(1))}
    assert np.array_equal(ensemble_scores(a, b, 1.0)[0][0], a[0][0])
    assert np.array_equal(ensemble_scores(a, b, 0.0)[0][0], b[0][0])
    np.testing.assert_allclose(ensemble_scores(a, b, 0.5)[0][0], [-4.5, -4.5])
    assert 1 in ensemble_scores(a, b, 0.5)


# ----------------------------------------------------------------------------------------- script runs
def common_args(output_dir, corpus, audio_cache):
    return ["--output_dir", str(output_dir), "--dataset", str(corpus), "--report_to", "none",
            "--per_device_train_batch_size", "2", "--per_device_eval_batch_size", "4", "--logging_steps", "1",
            "--audio_cache_dir", str(audio_cache), "--use_cpu", "true", "--dataloader_num_workers", "0"]


@pytest.mark.slow
def test_pretraining_then_sqa_end_to_end(tmp_path, tiny_corpus, tiny_text_bert, capsys):
    import run_pretraining
    import run_sqa

    pre = tmp_path / "pre"
    run_pretraining.main(common_args(pre, tiny_corpus, tmp_path / "audio") + [
        "--text_model_name_or_path", str(tiny_text_bert), "--stage", "both", "--max_steps", "2",
        "--stage1_num_train_epochs", "1", "--save_strategy", "no", "--max_length", "64", "--stride", "8",
        "--config_overrides", "audio_frame_stack=2,audio_encoder_hidden_size=8"])
    assert (pre / "stage1" / "DONE").exists() and (pre / "stage2" / "DONE").exists()
    logged = capsys.readouterr()
    for part in ("reconstruction_loss", "alignment_loss", "audio_mlm_loss"):
        assert f"'{part}'" in logged.out + logged.err, f"{part} is not logged"
    config = json.loads((pre / "config.json").read_text())
    assert config["audio_frame_stack"] == 2 and config["model_type"] == "speechbert"
    from transformers import AutoModelForPreTraining

    assert type(AutoModelForPreTraining.from_pretrained(pre, trust_remote_code=True)).__name__ == \
        "SpeechBertForPreTraining"

    sqa = tmp_path / "sqa"
    run_sqa.main(common_args(sqa, tiny_corpus, tmp_path / "audio") + [
        "--model_name_or_path", str(pre), "--text_model_name_or_path", str(tiny_text_bert), "--do_train",
        "--do_eval", "--max_steps", "2", "--save_strategy", "no", "--max_length", "64", "--stride", "8",
        "--systems", "speechbert,cascade,text", "--ensemble_weights", "0,0.5,1"])
    metrics = json.loads((sqa / "metrics.json").read_text())
    for split in ("validation", "test"):
        assert set(metrics[split]) == {"speechbert", "cascade", "text", "ensemble"}
        for system in metrics[split].values():
            assert system["overall"]["count"] == {"validation": 1, "test": 2}[split]
            assert 0 <= system["overall"]["f1"] <= 100 and system["overall"]["aos"] is not None
    assert metrics["ensemble_weight"]["chosen"] in (0.0, 0.5, 1.0)
    predictions = json.loads((sqa / "predictions_test.json").read_text())
    found = predictions["speechbert"]["test-0"]
    assert found["start_time"] < found["end_time"] and found["prediction_text"]
    assert "| SpeechBERT |" in (sqa / "results.md").read_text()
    assert (sqa / "wer_buckets_test.png").stat().st_size > 1000
    from transformers import AutoModelForQuestionAnswering, AutoProcessor

    cascade_config = json.loads((sqa / "cascade" / "config.json").read_text())  # a spoken QA checkpoint itself
    assert "spoken-question-answering" in cascade_config["custom_pipelines"]
    assert (sqa / "cascade" / "pipeline_cascade.py").is_file()
    model = AutoModelForQuestionAnswering.from_pretrained(sqa / "speechbert", trust_remote_code=True)
    AutoProcessor.from_pretrained(sqa / "speechbert", trust_remote_code=True)
    assert type(model).__name__ == "SpeechBertForQuestionAnswering"
    codes = json.loads((sqa / "speechbert" / "codes.json").read_text())  # measured after fine-tuning too
    assert set(codes) == {"validation"} and codes["validation"]["segments"] > 0
    assert set(json.loads((pre / "codes.json").read_text())) == {"validation"}  # and after pre-training


@pytest.mark.slow
def test_pretraining_resumed_after_stage1_starts_stage2_from_stage1_weights(tmp_path, tiny_corpus, tiny_text_bert):
    import shutil

    import torch
    from safetensors.torch import load_file

    import run_pretraining

    pre = tmp_path / "pre"
    args = common_args(pre, tiny_corpus, tmp_path / "audio") + [
        "--text_model_name_or_path", str(tiny_text_bert), "--stage", "both", "--max_steps", "2",
        "--stage1_num_train_epochs", "1", "--save_strategy", "no", "--max_length", "64", "--stride", "8",
        "--config_overrides", "audio_encoder_hidden_size=8", "--resume_from_checkpoint", "true"]
    run_pretraining.main(args)
    stage1 = load_file(pre / "stage1" / "model.safetensors")
    # Killed during step 2: its folder and the final model are gone; step 1 is DONE. Step 2 reruns with a learning
    # rate of 1e-30 (a zero one is refused: it would train nothing), so Adam moves no weight by more than about 1e-30
    # and the final audio encoder must be step 1's, not a fresh initialisation.
    shutil.rmtree(pre / "stage2")
    (pre / "model.safetensors").unlink()
    run_pretraining.main(args + ["--learning_rate", "1e-30"])
    final = load_file(pre / "model.safetensors")
    keys = [k for k in stage1 if k.startswith("bert.audio_encoder.")]
    assert keys
    for key in keys:
        torch.testing.assert_close(final[key], stage1[key], rtol=0, atol=1e-20)


@pytest.mark.slow
def test_pretraining_refuses_a_finished_step_whose_start_checkpoint_changed(tmp_path, tiny_corpus, tiny_text_bert):
    """A step continued from a SpeechBERT checkpoint (--model_name_or_path) records that start by its weights: rerun
    with the same start it is reused; with that folder's weights replaced (say a step-1 run redone into it) it is
    refused, not taken for the step trained from the old weights."""
    import torch
    from safetensors.torch import load_file, save_file

    import run_pretraining

    few = ["--stage", "1", "--max_steps", "1", "--save_strategy", "no", "--max_length", "64", "--stride", "8",
           "--resume_from_checkpoint", "true", "--codes_eval_splits", "none"]
    pre, cont = tmp_path / "pre", tmp_path / "cont"
    run_pretraining.main(common_args(pre, tiny_corpus, tmp_path / "audio") + few + [
        "--text_model_name_or_path", str(tiny_text_bert), "--config_overrides", "audio_encoder_hidden_size=8"])
    continued = common_args(cont, tiny_corpus, tmp_path / "audio") + few + ["--model_name_or_path", str(pre)]
    run_pretraining.main(continued)
    settings = json.loads((cont / "stage1" / "settings.json").read_text())
    assert settings["start"] == run_pretraining.checkpoint_identity(pre) and len(settings["start"]["weights_sha1"]) == 40
    run_pretraining.main(continued)  # same start: the finished step is reused
    weights = load_file(pre / "model.safetensors")
    key = next(k for k in weights if k.startswith("bert.audio_encoder."))
    weights[key] = weights[key] + 1
    save_file(weights, pre / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"other settings \(start.weights_sha1: "):
        run_pretraining.main(continued)


@pytest.mark.slow
def test_sqa_resumes_from_its_last_checkpoint(tmp_path, tiny_corpus, tiny_text_bert):
    import run_sqa

    args = common_args(tmp_path / "sqa", tiny_corpus, tmp_path / "audio") + [
        "--text_model_name_or_path", str(tiny_text_bert), "--do_train", "--systems", "speechbert",
        "--save_strategy", "steps", "--save_steps", "1", "--max_length", "64", "--stride", "8"]
    run_sqa.main(args + ["--max_steps", "2", "--resume_from_checkpoint", "true"])  # nothing to resume yet: starts
    checkpoints = sorted(p.name for p in (tmp_path / "sqa" / "speechbert").glob("checkpoint-*"))
    assert checkpoints == ["checkpoint-1", "checkpoint-2"]
    run_sqa.main(args + ["--max_steps", "3", "--resume_from_checkpoint", "true"])
    state = json.loads((tmp_path / "sqa" / "speechbert" / "checkpoint-3" / "trainer_state.json").read_text())
    steps = [entry["step"] for entry in state["log_history"] if "loss" in entry]
    assert steps == [1, 2, 3], "the resumed run continues the logged history instead of starting over"
    final = tmp_path / "sqa" / "speechbert" / "model.safetensors"
    saved = final.stat().st_mtime_ns
    # Training finished: a rerun (say after a kill during evaluation) evaluates the saved model, trains nothing.
    run_sqa.main(args + ["--max_steps", "3", "--resume_from_checkpoint", "true", "--do_eval", "--max_eval_samples", "1"])
    assert final.stat().st_mtime_ns == saved
    assert not (tmp_path / "sqa" / "speechbert" / "checkpoint-4").exists()
    assert json.loads((tmp_path / "sqa" / "metrics.json").read_text())["test"]["speechbert"]["overall"]["count"] == 1
    # Other settings must not resume (or reuse) these checkpoints: refused, naming what changed.
    with pytest.raises(ValueError, match=r"other settings \(learning_rate: 5e-05 -> 0.001\)"):
        run_sqa.main(args + ["--max_steps", "4", "--resume_from_checkpoint", "true", "--learning_rate", "1e-3"])
    assert not (tmp_path / "sqa" / "speechbert" / "checkpoint-4").exists()
    (tmp_path / "sqa" / "speechbert" / "settings.json").unlink()  # as a folder from before the check
    with pytest.raises(ValueError, match="without the settings it was made with"):
        run_sqa.main(args + ["--max_steps", "4", "--resume_from_checkpoint", "true", "--learning_rate", "1e-3"])


@pytest.mark.slow
def test_an_evaluation_rerun_reuses_the_logits_of_the_same_model_and_data_only(tmp_path, tiny_corpus, tiny_text_bert,
                                                                              monkeypatch):
    import run_sqa

    args = common_args(tmp_path / "sqa", tiny_corpus, tmp_path / "audio") + [
        "--text_model_name_or_path", str(tiny_text_bert), "--do_train", "--do_eval", "--systems", "speechbert",
        "cascade", "--max_steps", "1", "--save_strategy", "no", "--max_length", "64", "--stride", "8",
        "--resume_from_checkpoint", "true"]
    run_sqa.main(args)
    first = json.loads((tmp_path / "sqa" / "metrics.json").read_text())
    for system in ("speechbert", "cascade"):
        assert {p.name for p in (tmp_path / "sqa" / system / "eval_logits").iterdir()} == {"validation.npz",
                                                                                            "test.npz"}
    predicted = []
    original = run_sqa.predict_logits
    monkeypatch.setattr(run_sqa, "predict_logits", lambda *a: predicted.append(1) or original(*a))
    run_sqa.main(args)  # say after an interruption during the report: nothing is predicted again
    assert predicted == []
    assert json.loads((tmp_path / "sqa" / "metrics.json").read_text()) == first
    # Shorter windows are other items for the cascade (question and words in 48 pieces): its two splits are predicted
    # again and their files replaced. SpeechBERT's tiny passages fit either length: same items, logits reused.
    run_sqa.main(args[:-6] + ["--max_length", "48", "--stride", "8", "--resume_from_checkpoint", "true"])
    assert len(predicted) == 2
    run_sqa.main(args[:-6] + ["--max_length", "48", "--stride", "8", "--resume_from_checkpoint", "true"])
    assert len(predicted) == 2
    # A file cut short by an interruption: predicted again. Weights changed in place: never the old logits.
    stored = tmp_path / "sqa" / "cascade" / "eval_logits" / "test.npz"
    stored.write_bytes(stored.read_bytes()[:100])
    run_sqa.main(args[:-6] + ["--max_length", "48", "--stride", "8", "--resume_from_checkpoint", "true"])
    assert len(predicted) == 3
    from safetensors.torch import load_file, save_file

    weights_file = tmp_path / "sqa" / "cascade" / "model.safetensors"
    weights = load_file(weights_file)
    weights["qa_outputs.bias"] = weights["qa_outputs.bias"] + 1
    save_file(weights, weights_file, metadata={"format": "pt"})
    run_sqa.main(args[:-6] + ["--max_length", "48", "--stride", "8", "--resume_from_checkpoint", "true"])
    assert len(predicted) == 5


@pytest.mark.slow
def test_two_process_gloo_run(tmp_path, tiny_corpus, tiny_text_bert):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
               str(ROOT / "run_sqa.py")] + common_args(tmp_path / "ddp", tiny_corpus, tmp_path / "audio") + [
        "--text_model_name_or_path", str(tiny_text_bert), "--do_train", "--do_eval", "--systems",
        "speechbert,cascade", "--max_steps", "2", "--save_strategy", "no", "--max_length", "64", "--stride", "8",
        "--ddp_backend", "gloo"]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0 and "exitcode: -6" in result.stderr:
        # A gloo rank was seen aborting (SIGABRT) in 1 of 4 CI runs, before the scripts waited for every rank and
        # destroyed the process group themselves (sqa_train.distributed). Not reproduced since; one retry stays in
        # case that was not the cause, and a second failure fails the test.
        result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    errors = [line for line in result.stderr.splitlines() if "Error" in line or "[rank" in line]
    assert result.returncode == 0, "\n".join(errors[-40:]) + result.stderr[-2000:]
    metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert metrics["test"]["speechbert"]["overall"]["count"] == 2
    assert metrics["test"]["cascade"]["overall"]["count"] == 2


@pytest.mark.slow
def test_cascade_on_real_spoken_squad_transcripts(tmp_path, tiny_corpus, tiny_text_bert):
    """The text-only condition: the cascade answers on Spoken SQuAD-format ASR transcripts, scored by EM and F1."""
    import run_sqa

    transcript = "the normans gave their name to normandy a region in france"
    qas = [
        {"id": "s1", "question": "Who gave their name?", "answers": [{"text": "the normans", "answer_start": 0}]},
        {"id": "s2", "question": "Where?", "answers": [{"text": "france", "answer_start": transcript.index("france")}]},
    ]
    # Spoken SQuAD's articles are this project's: those of the train and validation splits (the tiny corpus titles its
    # articles by split) are left out, or a cascade would be scored on passages it was trained on.
    squad = {"version": "1.1", "data": [
        {"title": title, "paragraphs": [{"context": transcript,
                                         "qas": [dict(qa, id=f"{title}-{qa['id']}") for qa in qas]}]}
        for title in ("Normans", "train", "validation")]}
    (tmp_path / "spoken_test.json").write_text(json.dumps(squad))
    run_sqa.main(common_args(tmp_path / "sqa", tiny_corpus, tmp_path / "audio") + [
        "--text_model_name_or_path", str(tiny_text_bert), "--systems", "cascade", "--do_eval", "--max_length", "64",
        "--stride", "8", "--spoken_squad_text_json", str(tmp_path / "spoken_test.json")])
    metrics = json.loads((tmp_path / "sqa" / "metrics.json").read_text())
    text_only = metrics["spoken_squad_text"]["cascade"]
    assert text_only["overall"]["count"] == 2 and text_only["overall"]["aos"] is None
    predicted = json.loads((tmp_path / "sqa" / "predictions_spoken_squad_text.json").read_text())["cascade"]
    assert sorted(predicted) == ["Normans-s1", "Normans-s2"]
    squad["data"] = squad["data"][1:]  # nothing held out: refused before any model is loaded
    (tmp_path / "seen.json").write_text(json.dumps(squad))
    with pytest.raises(SystemExit, match="every article of it is in the dataset's train or validation split"):
        run_sqa.main(common_args(tmp_path / "sqa2", tiny_corpus, tmp_path / "audio") + [
            "--text_model_name_or_path", str(tiny_text_bert), "--systems", "cascade", "--do_eval", "--max_length", "64",
            "--stride", "8", "--spoken_squad_text_json", str(tmp_path / "seen.json")])
    assert not (tmp_path / "sqa2" / "cascade").exists()
    assert 0 <= text_only["overall"]["f1"] <= 100
    report = (tmp_path / "sqa" / "results.md").read_text()
    assert "**spoken_squad_text** (2 questions)" in report
    # No audio, so no WER buckets and no answers with ASR errors: those columns are left out, and said so.
    table = report[report.index("**spoken_squad_text**"):].split("\n\n")[1]
    assert "WER" not in table and "ASR errors" not in table
    assert "No questions in: WER [0%, 10%)" in report and "answers with ASR errors (columns left out)" in report


@pytest.mark.slow
def test_sqa_evaluates_int8_quantized_models(tmp_path, tiny_corpus, tiny_text_bert, monkeypatch):
    import run_sqa

    quantized = []
    original = run_sqa.quantize_int8

    def spy(model):
        out = original(model)
        quantized.append(sorted({type(m).__module__ for m in out.modules() if "quantized" in type(m).__module__}))
        return out

    monkeypatch.setattr(run_sqa, "quantize_int8", spy)
    args = common_args(tmp_path / "q", tiny_corpus, tmp_path / "audio") + [
        "--text_model_name_or_path", str(tiny_text_bert), "--do_eval", "--systems", "speechbert,cascade",
        "--max_length", "64", "--stride", "8", "--quantize", "int8"]
    run_sqa.main(args)
    assert len(quantized) == 2 and all(quantized), "both systems run with quantised layers"
    assert any("rnn" in name for name in quantized[0]), "SpeechBERT's GRU is quantised too"
    metrics = json.loads((tmp_path / "q" / "metrics.json").read_text())
    assert metrics["test"]["speechbert"]["overall"]["count"] == 2
    with pytest.raises(SystemExit, match="--quantize int8 is for evaluation"):
        run_sqa.main(args + ["--do_train"])
    with pytest.raises(ValueError, match="--quantize 'int4'"):
        run_sqa.main([a if a != "int8" else "int4" for a in args])
    # bf16 autocast would feed the int8 layers bfloat16, which they refuse (RuntimeError mid-evaluation): refused first
    with pytest.raises(SystemExit, match="--quantize int8 and --bf16"):
        run_sqa.main(args + ["--bf16", "--use_cpu"])


@pytest.mark.slow
def test_sqa_evaluates_an_int8_audio_encoder_under_bf16_autocast(tmp_path, tiny_corpus, tiny_text_bert, monkeypatch):
    """--quantize int8_encoder: only SpeechBERT's audio encoder is int8 (the GRU reads float32 frames), so the rest can
    run under CPU bf16 autocast (--bf16 --use_cpu); systems that read no audio are refused first."""
    import run_sqa

    evaluated = []
    original = run_sqa.make_trainer

    def spy(model, *a, **k):
        trainer = original(model, *a, **k)
        evaluated.append((model, trainer.model))
        return trainer

    monkeypatch.setattr(run_sqa, "make_trainer", spy)
    args = common_args(tmp_path / "q", tiny_corpus, tmp_path / "audio") + [
        "--do_eval", "--systems", "speechbert", "--max_length", "64", "--stride", "8", "--quantize", "int8_encoder",
        "--bf16", "--use_cpu"]
    run_sqa.main(args)
    (given, used), = evaluated
    quantized = {name.split("._")[0] for name, m in used.named_modules() if "quantized" in type(m).__module__}
    assert quantized == {"bert.audio_encoder.rnn", "bert.audio_encoder.projection"}  # nothing else
    assert not any("quantized" in type(m).__module__ for m in given.modules())  # the caller's model is left float
    metrics = json.loads((tmp_path / "q" / "metrics.json").read_text())
    assert metrics["test"]["speechbert"]["overall"]["count"] == 2
    with pytest.raises(SystemExit, match="--systems cascade reads no audio"):
        run_sqa.main(args[:args.index("speechbert")] + ["speechbert,cascade"] + args[args.index("speechbert") + 1:])


@pytest.mark.slow
def test_a_system_trains_its_own_epochs_and_is_reused_only_under_them(tmp_path, tiny_corpus, tiny_text_bert):
    """`--system_num_train_epochs cascade=2`: the cascade trains 2 epochs beside a 1-epoch text system, a rerun with
    the same option reuses it, and a shorter schedule is refused instead of passing the 2-epoch model off as 1."""
    import run_sqa

    args = common_args(tmp_path / "sqa", tiny_corpus, tmp_path / "audio") + [
        "--text_model_name_or_path", str(tiny_text_bert), "--do_train", "--systems", "cascade", "text",
        "--num_train_epochs", "1", "--save_strategy", "epoch", "--max_length", "64", "--stride", "8",
        "--resume_from_checkpoint", "true"]
    run_sqa.main(args + ["--system_num_train_epochs", "cascade=2"])

    def trained(system):
        settings = json.loads((tmp_path / "sqa" / system / "settings.json").read_text())
        state = sorted((tmp_path / "sqa" / system).glob("checkpoint-*/trainer_state.json"),
                       key=lambda path: int(path.parent.name.split("-")[1]))[-1]
        return settings["num_train_epochs"], json.loads(state.read_text())["epoch"]

    assert trained("cascade") == (2.0, 2.0) and trained("text") == (1.0, 1.0)
    final = tmp_path / "sqa" / "cascade" / "model.safetensors"
    saved = final.stat().st_mtime_ns
    run_sqa.main(args + ["--system_num_train_epochs", "cascade=2"])  # finished under the same settings: reused
    assert final.stat().st_mtime_ns == saved
    with pytest.raises(ValueError, match=r"longer schedule than asked \(num_train_epochs: 2.0 -> 1.0\)"):
        run_sqa.main(args)  # the 2-epoch cascade would "resume" past a 1-epoch end and count as 1 epoch
    assert final.stat().st_mtime_ns == saved


def test_system_epochs_option_is_checked_at_parsing():
    from transformers import HfArgumentParser

    import run_sqa

    parser = HfArgumentParser(run_sqa.DataTrainingArguments)
    (args,) = parser.parse_args_into_dataclasses(["--system_num_train_epochs", "cascade=3,text=1.5"])
    assert args.epochs_by_system == {"cascade": 3.0, "text": 1.5}
    for wrong, message in ((["cascade=0"], "positive finite number of epochs"), (["cascade=inf"], "positive finite"),
                           (["cascade"], "SYSTEM=EPOCHS"),
                           (["cascade=three"], "SYSTEM=EPOCHS"), (["bert=2"], r"'bert' is not among the systems run"),
                           (["cascade=3", "cascade=2"], "names 'cascade' twice")):
        with pytest.raises(ValueError, match=message):
            parser.parse_args_into_dataclasses(["--system_num_train_epochs", *wrong])
    with pytest.raises(ValueError, match="'text' is not among the systems run"):
        parser.parse_args_into_dataclasses(["--systems", "cascade", "--system_num_train_epochs", "text=2"])
    # A step limit overrides every epoch count: refused before any data is read.
    with pytest.raises(SystemExit, match=r"would do nothing: --max_steps 5"):
        run_sqa.main(["--output_dir", "/nonexistent/sqa", "--dataset", "/nonexistent/corpus", "--do_train",
                      "--systems", "cascade", "--system_num_train_epochs", "cascade=3", "--max_steps", "5"])


def test_a_shorter_schedule_never_resumes_a_longer_run(tmp_path):
    from sqa_train.stages import check_stage_settings, record_settings

    folder = tmp_path / "cascade"
    record_settings(folder, {"stage": "cascade", "max_steps": -1, "num_train_epochs": 3})
    extendable = ("max_steps", "num_train_epochs")
    # Nothing trained yet: any length may start.
    assert not check_stage_settings(folder, {"stage": "cascade", "max_steps": -1, "num_train_epochs": 2}, extendable)
    (folder / "checkpoint-10").mkdir()
    assert not check_stage_settings(folder, {"stage": "cascade", "max_steps": -1, "num_train_epochs": 4}, extendable)
    for shorter in ({"max_steps": -1, "num_train_epochs": 2}, {"max_steps": 500, "num_train_epochs": 3}):
        with pytest.raises(ValueError, match="longer schedule than asked"):
            check_stage_settings(folder, {"stage": "cascade", **shorter}, extendable)
    # Step limits on both sides: only the steps count (epochs do nothing then).
    record_settings(folder, {"stage": "cascade", "max_steps": 20, "num_train_epochs": 3})
    assert not check_stage_settings(folder, {"stage": "cascade", "max_steps": 30, "num_train_epochs": 1}, extendable)
    with pytest.raises(ValueError, match=r"max_steps: 20 -> 10"):
        check_stage_settings(folder, {"stage": "cascade", "max_steps": 10, "num_train_epochs": 3}, extendable)


@pytest.mark.slow
def test_sqa_with_frozen_audio_encoder_trains_only_the_rest(tmp_path, tiny_corpus, tiny_text_bert, monkeypatch):
    import torch

    import run_sqa

    before = {}
    original = run_sqa.make_trainer

    def spy(model, *args, **kwargs):
        before["model"] = model
        before["encoder"] = {k: v.clone() for k, v in model.bert.audio_encoder.state_dict().items()}
        before["classifier"] = model.qa_outputs.weight.detach().clone()
        return original(model, *args, **kwargs)

    monkeypatch.setattr(run_sqa, "make_trainer", spy)
    args = common_args(tmp_path / "sqa", tiny_corpus, tmp_path / "audio") + [
        "--text_model_name_or_path", str(tiny_text_bert), "--do_train", "--systems", "speechbert",
        "--max_steps", "2", "--learning_rate", "1e-2", "--save_strategy", "no", "--max_length", "64", "--stride", "8",
        "--freeze_audio_encoder", "--resume_from_checkpoint", "true"]
    run_sqa.main(args)
    model = before["model"]
    assert not any(p.requires_grad for p in model.bert.audio_encoder.parameters())
    for key, value in model.bert.audio_encoder.state_dict().items():
        torch.testing.assert_close(value, before["encoder"][key], msg=f"frozen {key} changed")
    assert not torch.equal(model.qa_outputs.weight.detach(), before["classifier"]), "the rest still trains"
    marker = json.loads((tmp_path / "sqa" / "speechbert" / "settings.json").read_text())
    assert marker["freeze_audio_encoder"] is True and (tmp_path / "sqa" / "speechbert" / "DONE").exists()
    # A finished frozen training counts as done only for a frozen rerun; one that fine-tunes the encoder is refused.
    from types import SimpleNamespace

    training_args = SimpleNamespace(output_dir=str(tmp_path / "sqa"), do_train=True, resume_from_checkpoint="true",
                                    max_steps=2, num_train_epochs=marker["num_train_epochs"],
                                    learning_rate=1e-2, per_device_train_batch_size=2, seed=marker["seed"])
    count = marker["train_questions"]
    start = marker["start"]
    assert start == run_sqa.checkpoint_identity(tiny_text_bert) and len(start["weights_sha1"]) == 40
    assert run_sqa.finished_model(training_args, "speechbert", count, freeze_audio_encoder=True, start=start)
    with pytest.raises(ValueError, match=r"other settings \(freeze_audio_encoder: True -> '\(absent\)'\)"):
        run_sqa.finished_model(training_args, "speechbert", count, freeze_audio_encoder=False, start=start)
    # Another start checkpoint (say a graft rebuilt in place from another encoder) is refused, not reused.
    with pytest.raises(ValueError, match=r"other settings \(start.weights_sha1: "):
        run_sqa.finished_model(training_args, "speechbert", count, freeze_audio_encoder=True,
                               start={"weights_sha1": "0" * 40})
    # A longer schedule is no longer finished: it resumes (extends) the run instead of reusing it.
    assert run_sqa.finished_model(SimpleNamespace(**{**vars(training_args), "max_steps": 3}), "speechbert", count,
                                  freeze_audio_encoder=True, start=start) is None


@pytest.mark.slow
def test_cached_codes_of_a_frozen_encoder_give_the_same_batches(tmp_path, tiny_corpus, tiny_text_bert):
    """`PassageCodes` encodes each passage once; the model reads the same codes as from the frames, in every window."""
    import torch
    from transformers import AutoTokenizer

    import run_sqa
    from sqa_train.data import PassageCodes, PassageFrames, SpeechBertQACollator, load_corpus, speechbert_qa_items

    tokenizer = AutoTokenizer.from_pretrained(tiny_text_bert)
    model, processor = run_sqa.build_speechbert(str(tiny_text_bert), tokenizer)
    corpus = load_corpus(str(tiny_corpus))
    rows = [corpus[split][i] for split in ("train", "validation") for i in range(len(corpus[split]))]
    frames = PassageFrames(processor.feature_extractor, tmp_path / "audio")
    # Short windows: several per question, so windows share segments.
    items, _ = speechbert_qa_items(rows, processor, frames, max_length=32, stride=8, train=False)
    codes = PassageCodes(frames, passages_per_call=1)
    model.train()  # training mode is kept; the codes are computed in eval mode
    assert codes.encode(model, items) == len({item["paragraph_id"] for item in items}) > 1
    assert model.training and codes.encode(model, items) == 0  # held passages are not encoded again
    assert len(items) > len(codes.codes)
    model.eval()
    plain = SpeechBertQACollator(frames, tokenizer.pad_token_id)
    cached = SpeechBertQACollator(frames, tokenizer.pad_token_id, codes)
    for start in range(0, len(items), 3):
        window = items[start : start + 3]
        a, b = plain(window), cached(window)
        assert "audio_features" not in b and b["audio_codes"].shape[:2] == a["audio_feature_lengths"].shape
        torch.testing.assert_close(b["audio_feature_lengths"], a["audio_feature_lengths"])
        with torch.no_grad():
            torch.testing.assert_close(model(**b).start_logits, model(**a).start_logits, atol=1e-5, rtol=1e-5)


def test_checkpoint_identity_follows_the_weights_not_the_path(tmp_path):
    from sqa_train.stages import checkpoint_identity

    a, b = tmp_path / "a", tmp_path / "moved" / "b"
    for folder in (a, b):
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(b"weights")
        (folder / "config.json").write_text("{}")
    assert checkpoint_identity(a) == checkpoint_identity(str(b))
    (b / "config.json").write_text('{"changed": 1}')  # the config is fingerprinted elsewhere; the weights here
    assert checkpoint_identity(a) == checkpoint_identity(b)
    (b / "model.safetensors").write_bytes(b"other weights")
    assert checkpoint_identity(a) != checkpoint_identity(b)
    assert checkpoint_identity("bert-base-uncased") == {"name": "bert-base-uncased"}


def test_scores_per_voice(metric):
    from sqa_train.evaluation import score, voice_table

    def row(qid, voice, answer):
        return {"id": qid, "voice": voice, "source": "spoken-squad-text", "answers": {
            "text": [answer], "start_time": [1.0], "end_time": [2.0]}, "wer": 0.1, "answer_has_asr_error": False}

    rows = [row("a", "slt", "normans"), row("b", "awb", "river"), row("c", "awb", "king")]
    predictions = {0: {"prediction_text": "normans", "start_time": 1.0, "end_time": 2.0},
                   1: {"prediction_text": "river", "start_time": 1.0, "end_time": 2.0},
                   2: {"prediction_text": "queen", "start_time": 5.0, "end_time": 6.0}}
    result = score(metric, rows, predictions, (0.2,))
    assert result["per_voice"]["slt"]["count"] == 1 and result["per_voice"]["slt"]["f1"] == 100
    assert result["per_voice"]["awb"]["count"] == 2 and result["per_voice"]["awb"]["f1"] == 50
    assert result["overall"]["f1"] == pytest.approx(200 / 3)
    table = voice_table({"speechbert": result}, "test")
    assert "F1 / AOS, awb (n=2)" in table and "| SpeechBERT | 50.0 / 50.0 | 100.0 / 100.0 |" in table
    assert "per_voice" not in score(metric, rows[1:], {0: predictions[1], 1: predictions[2]}, (0.2,))


def test_audio_encoder_learning_rate_gets_its_own_param_groups(tmp_path, tester):
    import torch
    from transformers import TrainingArguments

    import run_sqa
    from speechbert import SpeechBertForQuestionAnswering

    model = SpeechBertForQuestionAnswering(tester.config())
    args = TrainingArguments(output_dir=str(tmp_path), learning_rate=1e-4, weight_decay=0.01, report_to="none",
                             use_cpu=True)
    trainer = run_sqa.SpeechBertTrainer(model=model, args=args, audio_encoder_learning_rate=3e-6)
    optimizer = trainer.create_optimizer()
    encoder = {id(p) for n, p in model.named_parameters() if "audio_encoder." in n}
    seen = []
    for group in optimizer.param_groups:
        ids = {id(p) for p in group["params"]}
        seen += [id(p) for p in group["params"]]
        assert ids <= encoder or not ids & encoder  # no group mixes the encoder with the rest
        assert group["lr"] == (3e-6 if ids and ids <= encoder else 1e-4)
    assert sorted(seen) == sorted(id(p) for p in model.parameters() if p.requires_grad)  # every weight, once
    assert {g["weight_decay"] for g in optimizer.param_groups if {id(p) for p in g["params"]} <= encoder} == {0.01, 0.0}
    trainer.create_scheduler(10, optimizer)
    assert trainer.create_optimizer() is optimizer and len(optimizer.param_groups) == 4
    with pytest.raises(ValueError, match="exclude each other"):
        run_sqa.ModelArguments(audio_encoder_learning_rate=1e-5, freeze_audio_encoder=True,
                               text_model_name_or_path="x")
    del torch


def test_config_overrides_are_applied_and_checked(tmp_path, tester, tokenizer, tiny_text_bert):
    import run_sqa
    from speechbert import SpeechBertForQuestionAnswering

    SpeechBertForQuestionAnswering(tester.config()).save_pretrained(tmp_path / "ckpt")
    tokenizer.save_pretrained(tmp_path / "ckpt")
    model, _ = run_sqa.build_speechbert(str(tmp_path / "ckpt"), tokenizer,
                                        "audio_code_mode=soft_word_embedding,alignment_temperature=0.1")
    assert model.config.audio_code_mode == "soft_word_embedding" and model.config.alignment_temperature == 0.1
    with pytest.raises(ValueError, match="audio_code_mode must be one of"):
        run_sqa.build_speechbert(str(tmp_path / "ckpt"), tokenizer, "audio_code_mode=sometimes")
    with pytest.raises(ValueError, match="key nonsense isn't in the original config"):
        run_sqa.build_speechbert(str(tmp_path / "ckpt"), tokenizer, "nonsense=1")
    from_text, _ = run_sqa.build_speechbert(str(tiny_text_bert), tokenizer, "audio_encoder_hidden_size=12")
    assert from_text.config.audio_encoder_hidden_size == 12
    assert from_text.bert.audio_encoder.rnn.hidden_size == 12


def test_list_options_take_spaces_or_commas():
    from transformers import HfArgumentParser

    import run_sqa

    parser = HfArgumentParser(run_sqa.DataTrainingArguments)
    (spaced,) = parser.parse_args_into_dataclasses(
        ["--systems", "speechbert", "cascade", "--wer_bucket_edges", "0.2", "0.4", "--ensemble_weights", "0", "1"])
    (commas,) = parser.parse_args_into_dataclasses(
        ["--systems", "speechbert,cascade", "--wer_bucket_edges", "0.2,0.4", "--ensemble_weights", "0,1"])
    for args in (spaced, commas):
        assert args.system_list == ["speechbert", "cascade"] and args.edges == (0.2, 0.4) and args.weights == [0, 1]
    (default,) = parser.parse_args_into_dataclasses([])
    assert default.system_list == ["speechbert", "cascade", "text"] and default.edges == (0.1, 0.2, 0.3, 0.4)
    with pytest.raises(ValueError, match=r"unknown \['bert'\]"):
        parser.parse_args_into_dataclasses(["--systems", "speechbert", "bert"])
    with pytest.raises(ValueError, match="increasing"):
        parser.parse_args_into_dataclasses(["--wer_bucket_edges", "0.4", "0.2"])
    with pytest.raises(ValueError, match="lists of numbers"):
        parser.parse_args_into_dataclasses(["--ensemble_weights", "half"])


@pytest.mark.parametrize("edges", [["0.2", "0.2", "0.4"], ["0.2", "inf"], ["0.2", "nan"], ["0", "0.2"]])
def test_wer_bucket_edges_the_metric_would_refuse_are_refused_before_training(edges, metric):
    """A repeated or infinite edge passed the script's check and failed only at the metric, after training."""
    from transformers import HfArgumentParser

    import run_sqa

    with pytest.raises(ValueError, match=r"--wer_bucket_edges .*increasing \(each edge once\), positive and finite"):
        HfArgumentParser(run_sqa.DataTrainingArguments).parse_args_into_dataclasses(["--wer_bucket_edges", *edges])
    with pytest.raises(ValueError, match="wer_bucket_edges must be"):  # what the metric says of the same edges
        metric.compute(predictions=[prediction("a", "x")], references=[reference("a", ["x"], [(0, 1)])],
                       wer_bucket_edges=[float(e) for e in edges])


@pytest.mark.parametrize("script, arguments", [("run_sqa", "DataTrainingArguments"),
                                               ("run_pretraining", "PretrainingArguments")])
def test_codes_eval_splits_must_name_splits(script, arguments):
    """`--codes_eval_splits val` skipped the code-quality measurement silently, after training."""
    import importlib

    from transformers import HfArgumentParser

    parser = HfArgumentParser(getattr(importlib.import_module(script), arguments))
    with pytest.raises(ValueError, match=r"--codes_eval_splits 'validation val': unknown \['val'\], expected some"):
        parser.parse_args_into_dataclasses(["--codes_eval_splits", "validation", "val"])
    for given in (["validation", "test"], ["validation,test"]):
        (args,) = parser.parse_args_into_dataclasses(["--codes_eval_splits", *given])
        assert args.codes_eval_splits == ["validation", "test"]
    (args,) = parser.parse_args_into_dataclasses(["--codes_eval_splits", "none"])
    assert args.codes_eval_splits == []


def test_pretraining_continued_from_a_checkpoint_applies_its_overrides(tmp_path, tester, tokenizer):
    """--model_name_or_path with --config_overrides: fields that keep the weights change the config (they were
    silently ignored); fields that would leave weights untrained are refused, naming the value."""
    import run_pretraining
    from speechbert import SpeechBertForPreTraining

    ckpt = tmp_path / "ckpt"
    SpeechBertForPreTraining(tester.config()).save_pretrained(ckpt)
    tokenizer.save_pretrained(ckpt)

    def build(overrides):
        args = run_pretraining.ModelArguments(model_name_or_path=str(ckpt), config_overrides=overrides)
        return run_pretraining.build_model(args, tokenizer)

    assert build(None).config.alignment_temperature == tester.config().alignment_temperature
    model = build("alignment_temperature=0.2,alignment_loss_type=cosine_softmax")
    assert model.config.alignment_temperature == 0.2 and model.config.alignment_loss_type == "cosine_softmax"
    layers = tester.config().audio_encoder_num_layers + 1
    with pytest.raises(ValueError, match=f"audio_encoder_num_layers={layers}.*change the architecture"):
        build(f"audio_encoder_num_layers={layers}")
    # A QA checkpoint lacks the decoder and MLM head whatever the overrides: those start untrained, no error.
    from speechbert import SpeechBertForQuestionAnswering

    SpeechBertForQuestionAnswering(tester.config()).save_pretrained(ckpt)
    assert build("alignment_temperature=0.2").config.alignment_temperature == 0.2


def test_leaving_out_a_voice_no_passage_has_is_an_error():
    from sqa_train.data import leave_out_voices

    rows = [{"voice": "awb", "n": 0}, {"voice": "slt", "n": 1}, {"voice": "awb", "n": 2}]
    assert [r["n"] for r in leave_out_voices(rows, ["slt"])] == [0, 2]
    assert leave_out_voices(rows, []) == rows and leave_out_voices(rows, None) == rows
    with pytest.raises(ValueError, match=r"--exclude_train_voices \['sIt'\].*voices there are \['awb', 'slt'\]"):
        leave_out_voices(rows, ["slt", "sIt"])


def test_scripts_refuse_an_unknown_left_out_voice_before_training(tmp_path, tiny_corpus, tiny_text_bert):
    import run_pretraining
    import run_sqa

    with pytest.raises(ValueError, match=r"--exclude_train_voices \['nobody'\]"):
        run_sqa.main(common_args(tmp_path / "sqa", tiny_corpus, tmp_path / "audio") + [
            "--text_model_name_or_path", str(tiny_text_bert), "--do_train", "--systems", "speechbert",
            "--max_length", "64", "--stride", "8", "--exclude_train_voices", "nobody"])
    with pytest.raises(ValueError, match=r"--exclude_train_voices \['nobody'\]"):
        run_pretraining.main(common_args(tmp_path / "pre", tiny_corpus, tmp_path / "audio") + [
            "--text_model_name_or_path", str(tiny_text_bert), "--stage", "1", "--exclude_train_voices", "nobody"])
    assert not (tmp_path / "audio").exists()  # refused before any audio was made


def test_sqa_soft_word_embedding_over_the_train_words(tmp_path, tiny_corpus, tiny_text_bert):
    """`--soft_word_embedding_pieces train`: the saved model's soft word embedding mixes the first pieces of the
    train split's reference words; it needs the soft word embedding mode and is part of the run's settings."""
    from transformers import AutoConfig, AutoTokenizer

    import run_sqa
    from sqa_data.dataset import read_records
    from sqa_train.codes import seen_pieces

    sqa = tmp_path / "sqa"
    args = common_args(sqa, tiny_corpus, tmp_path / "audio") + [
        "--text_model_name_or_path", str(tiny_text_bert), "--do_train", "--max_steps", "1", "--save_strategy", "no",
        "--max_length", "64", "--stride", "8", "--systems", "speechbert", "--soft_word_embedding_pieces", "train"]
    with pytest.raises(ValueError, match="needs audio_code_mode='soft_word_embedding', the model has 'direct'"):
        run_sqa.main(args)
    run_sqa.main(args + ["--config_overrides", "audio_code_mode=soft_word_embedding"])
    config = AutoConfig.from_pretrained(sqa / "speechbert", trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(tiny_text_bert)
    expected = sorted(seen_pieces(tokenizer, read_records(tiny_corpus)["train"]))
    assert config.soft_word_embedding_pieces == expected and 0 < len(expected) < config.vocab_size
    settings = json.loads((sqa / "speechbert" / "settings.json").read_text())
    assert settings["soft_word_embedding_pieces"] == "train"
    with pytest.raises(ValueError, match="--soft_word_embedding_pieces 'seen': expected 'train', 'all'"):
        run_sqa.main(args[:-1] + ["seen"])


def test_scripts_load_checkpoints_with_the_package_code_not_their_copy(tmp_path, tester, tokenizer):
    """A checkpoint carries a copy of the Hub code from when it was saved; run_sqa.py and run_pretraining.py load it
    with this package's classes, so a config field newer than that copy (soft_word_embedding_pieces) is not silently
    ignored by the old code."""
    import run_pretraining
    import run_sqa
    from speechbert import (SpeechBertForPreTraining, SpeechBertForQuestionAnswering, SpeechBertProcessor)
    from speechbert.pipeline_speechbert import register

    register()
    ckpt = tmp_path / "ckpt"
    SpeechBertForQuestionAnswering(tester.config(audio_code_mode="soft_word_embedding")).save_pretrained(ckpt)
    SpeechBertProcessor.for_config(tester.config(), tokenizer).save_pretrained(ckpt)
    assert (ckpt / "modeling_speechbert.py").exists() and "auto_map" in json.loads((ckpt / "config.json").read_text())
    # An old copy: its soft word embedding ignores the pieces.
    copy = (ckpt / "modeling_speechbert.py").read_text()
    (ckpt / "modeling_speechbert.py").write_text(copy.replace("pieces = self._soft_pieces()", "pieces = None"))
    model, processor = run_sqa.build_speechbert(str(ckpt), tokenizer)
    assert type(model) is SpeechBertForQuestionAnswering and type(processor) is SpeechBertProcessor
    assert type(processor.feature_extractor).__module__ == "speechbert.feature_extraction_speechbert"
    SpeechBertForPreTraining(tester.config()).save_pretrained(tmp_path / "pre")
    args = run_pretraining.ModelArguments(model_name_or_path=str(tmp_path / "pre"))
    assert type(run_pretraining.build_model(args, tokenizer)) is SpeechBertForPreTraining
