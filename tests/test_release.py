"""Release end to end over HTTP: push a checkpoint and its card with the real huggingface_hub client to a
Hub-compatible server on 127.0.0.1, then load it on an empty cache with trust_remote_code in a fresh process."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from speechbert import SpeechBertForQuestionAnswering

from .conftest import make_passage, seeded
from .hub_server import HubServer

ROOT = Path(__file__).resolve().parents[1]


def run(args, env, cwd):
    result = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result.stdout


@pytest.fixture
def released_checkpoint(tmp_path, tester, processor):
    model = seeded(SpeechBertForQuestionAnswering, tester.config())
    checkpoint = tmp_path / "speechbert"
    model.save_pretrained(checkpoint)
    processor.save_pretrained(checkpoint)
    (checkpoint / "checkpoint-5").mkdir()  # training leftovers that must not be released
    (checkpoint / "checkpoint-5" / "config.json").write_text("{}")
    (checkpoint / "training_args.bin").write_bytes(b"x")
    for stray in ("optimizer.pt", ".env", "settings.json", "trainer_state.json", "eval_logits/test.npz",
                  "eval_logits/key.json"):
        (checkpoint / stray).parent.mkdir(exist_ok=True)
        (checkpoint / stray).write_bytes(b"secret")
    import evaluate

    metric = evaluate.load(str(ROOT / "metrics" / "spoken_squad_qa"))
    scores = metric.compute(
        predictions=[{"id": "a", "prediction_text": "the normans", "start_time": 1.0, "end_time": 2.0},
                     {"id": "b", "prediction_text": "paris", "start_time": 3.0, "end_time": 3.4}],
        references=[{"id": "a", "answers": {"text": ["normans"], "start_time": [1.2], "end_time": [2.0]},
                     "wer": 0.12, "has_asr_error": False},
                    {"id": "b", "answers": {"text": ["rouen"], "start_time": [5.0], "end_time": [5.5]},
                     "wer": 0.45, "has_asr_error": True}])
    (tmp_path / "metrics.json").write_text(json.dumps({"test": {"speechbert": scores}}))
    audio, segments, words = make_passage(10)
    inputs = processor(question="who ruled normandy ?", audio=audio, word_segments=segments, sampling_rate=16000,
                       return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).start_logits.numpy()
    np.savez(tmp_path / "passage.npz", audio=audio, segments=np.array(segments), logits=logits)
    return checkpoint, scores


@pytest.mark.slow
def test_push_then_load_on_empty_cache(tmp_path, released_checkpoint):
    checkpoint, scores = released_checkpoint
    with HubServer() as server:
        env = dict(os.environ, HF_ENDPOINT=server.url, HF_TOKEN="hf_test", HF_HUB_DISABLE_XET="1",
                   HF_HUB_OFFLINE="0", TRANSFORMERS_OFFLINE="0", HF_HOME=str(tmp_path / "push_home"),
                   PYTHONPATH=str(ROOT))
        out = run(["-m", "sqa_train.release", "--checkpoint", str(checkpoint), "--repo_id", "org/speechbert-sqa",
                   "--metrics", str(tmp_path / "metrics.json")], env, ROOT)
        shas = json.loads(out.strip().splitlines()[-1])
        repo = server.repos["org/speechbert-sqa"]
        (model_sha, model_files), (card_sha, card_files) = repo.commits
        assert (model_sha, card_sha) == (shas["model_revision"], shas["card_revision"])
        assert "README.md" not in model_files and "README.md" in card_files, "the card comes after the model"
        assert {"modeling_speechbert.py", "pipeline_speechbert.py", "handler.py", "processor_config.json",
                "model.safetensors"} <= set(model_files)
        assert not any(name.startswith("checkpoint-") or name == "training_args.bin" for name in model_files)
        assert not {"optimizer.pt", ".env", "settings.json", "trainer_state.json"} & set(model_files)
        assert not any("/" in name for name in model_files), sorted(model_files)

        card = card_files["README.md"].decode()
        header = yaml.safe_load(card.split("---")[1])
        assert header["license"] == "apache-2.0" and header["pipeline_tag"] == "question-answering"
        assert {"custom_code", "audio", "spoken-question-answering"} <= set(header["tags"])
        results = {m["name"]: m["value"] for r in header["model-index"][0]["results"] for m in r["metrics"]}
        assert results["F1"] == pytest.approx(scores["overall"]["f1"], abs=0.01)
        assert results["AOS"] == pytest.approx(scores["overall"]["aos"], abs=0.01)
        assert results["F1, passage WER [40%, inf) (n=1)"] == pytest.approx(scores["wer_buckets"]["[40%, inf)"]["f1"])
        assert f'revision="{model_sha}"' in card and "trust_remote_code=True" in card

        # A user with none of this repository's code and an empty cache.
        child = textwrap.dedent(f"""
            import json, sys
            import numpy as np, torch
            from transformers import AutoModelForQuestionAnswering, AutoProcessor, pipeline
            repo, sha = "org/speechbert-sqa", {model_sha!r}
            model = AutoModelForQuestionAnswering.from_pretrained(repo, trust_remote_code=True, revision=sha).eval()
            processor = AutoProcessor.from_pretrained(repo, trust_remote_code=True, revision=sha)
            data = np.load({str(tmp_path / 'passage.npz')!r})
            inputs = processor(question="who ruled normandy ?", audio=data["audio"],
                               word_segments=data["segments"].tolist(), sampling_rate=16000, return_tensors="pt")
            with torch.no_grad():
                logits = model(**inputs).start_logits.numpy()
            qa = pipeline(model=repo, trust_remote_code=True, revision=sha)
            answer = qa(data["audio"], question="who ?", sampling_rate=16000, word_segments=data["segments"].tolist())
            assert "speechbert" not in sys.modules
            print(json.dumps({{"max_diff": float(np.abs(logits - data["logits"]).max()), "answer": answer,
                               "module": type(model).__module__}}))
        """)
        env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
        env["HF_HOME"] = str(tmp_path / "empty_home")
        loaded = json.loads(run(["-c", child], env, tmp_path).strip().splitlines()[-1])
    assert loaded["max_diff"] == 0.0
    assert loaded["module"].startswith("transformers_modules.")
    assert loaded["answer"]["start"] < loaded["answer"]["end"]


def test_release_refuses_incomplete_checkpoint(tmp_path):
    from sqa_train.release import release

    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="lacks modeling_speechbert.py"):
        release(tmp_path, "org/x")


@pytest.mark.slow
def test_run_sqa_push_to_hub(tmp_path, tiny_corpus, tiny_text_bert):
    with HubServer() as server:
        env = dict(os.environ, HF_ENDPOINT=server.url, HF_TOKEN="hf_test", HF_HUB_DISABLE_XET="1",
                   HF_HUB_OFFLINE="0", TRANSFORMERS_OFFLINE="0", HF_HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT))
        run([str(ROOT / "run_sqa.py"), "--output_dir", str(tmp_path / "sqa"), "--dataset", str(tiny_corpus),
             "--text_model_name_or_path", str(tiny_text_bert), "--systems", "speechbert,cascade", "--do_train",
             "--do_eval", "--max_steps", "1", "--save_strategy", "no", "--report_to", "none", "--max_length", "64",
             "--stride", "8", "--audio_cache_dir", str(tmp_path / "audio"), "--push_to_hub",
             "--hub_model_id", "org/sqa-run"], env, tmp_path)
        (_, model_files), (_, card_files) = server.repos["org/sqa-run"].commits
    assert "model.safetensors" in model_files and "README.md" not in model_files
    assert "wer_buckets_test.png" in card_files
    metrics = json.loads((tmp_path / "sqa" / "metrics.json").read_text())
    f1 = metrics["test"]["speechbert"]["overall"]["f1"]
    assert f"F1 {f1:.1f}" in card_files["README.md"].decode()


# ------------------------------------------------------------------ which system's figures the card shows
def _scores(f1):
    return {"overall": {"count": 2, "exact_match": 50.0, "f1": f1, "aos": 40.0, "frame_f1": 45.0},
            "wer_buckets": {"[0%, 10%)": {"count": 2, "exact_match": 50.0, "f1": f1, "aos": 40.0, "frame_f1": 45.0}},
            "answers_with_asr_errors": {"count": 0, "exact_match": None, "f1": None, "aos": None, "frame_f1": None}}


@pytest.fixture
def two_systems(tmp_path, tester, processor):
    """run_sqa.py's layout: OUTPUT_DIR/speechbert and OUTPUT_DIR/speechbert_segmenter beside one metrics.json."""
    model = seeded(SpeechBertForQuestionAnswering, tester.config(word_segmenter=True))
    for system in ("speechbert", "speechbert_segmenter"):
        model.save_pretrained(tmp_path / system)
        processor.save_pretrained(tmp_path / system)
    metrics = {"test": {"speechbert": _scores(43.0), "speechbert_segmenter": _scores(40.5)}}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    return tmp_path, metrics


def test_the_card_shows_the_released_systems_figures(two_systems):
    from sqa_train.release import model_card, released_system

    folder, metrics = two_systems
    # A segmenter system's folder used to be carded with the ASR-segment system's F1.
    assert released_system(folder / "speechbert_segmenter", metrics) == "speechbert_segmenter"
    assert released_system(folder / "speechbert", metrics) == "speechbert"
    assert released_system(folder / "any-name", metrics) == "speechbert"
    assert released_system(folder / "any-name", metrics, "speechbert_segmenter") == "speechbert_segmenter"
    card = str(model_card("org/x", "abc", metrics, None, system="speechbert_segmenter", word_segmenter=True))
    header = yaml.safe_load(card.split("---")[1])
    results = {m["name"]: m["value"] for r in header["model-index"][0]["results"] for m in r["metrics"]}
    assert results["F1"] == 40.5
    assert "`speechbert_segmenter` system (word segments from its own word segmenter (no ASR))" in card
    assert "its own word segmenter finds the words" in card and "Word times come from pocketsphinx" not in card
    asr_card = str(model_card("org/x", "abc", metrics, None))
    assert "F1 43.0" in asr_card and "Word times come from pocketsphinx when none are given" in asr_card


@pytest.mark.parametrize("change, message", [
    ({"system": "cascade"},
     r"no test results for system 'cascade' \(it has \['speechbert', 'speechbert_segmenter'\]\)"),
    ({"metrics": {"validation": {}}}, "the metrics file has no 'test' split"),
    ({"metrics": "not json {"}, r"--metrics .*metrics.json is not JSON"),
    ({"plot": "missing.png"}, r"--plot missing.png: no such file"),
    # Fields the card is built from: these failed with a raw KeyError / TypeError after the weights were pushed.
    ({"drop": "wer_buckets"}, r"metrics test.speechbert has no 'wer_buckets'"),
    ({"drop": "answers_with_asr_errors"}, r"has no 'answers_with_asr_errors'"),
    ({"bucket": {"f1": 20.0}}, r"wer_buckets\['\[0%, 10%\)'\].count must be a non-negative integer, got None"),
    ({"overall": {"exact_match": None}}, r"overall.exact_match is missing or null"),
    ({"overall": {"f1": "20"}}, r"overall.f1 must be a number or null, got '20'"),
    ({"overall": {"count": True}}, r"overall.count must be a non-negative integer, got True"),
])
def test_release_checks_everything_before_the_first_push(two_systems, monkeypatch, change, message):
    """A missing plot was found only after the model was pushed; metrics without the system a half-empty card."""
    from sqa_train import release as release_module

    folder, _ = two_systems
    monkeypatch.setattr(release_module, "HfApi", lambda **kw: pytest.fail("the Hub was contacted before the check"))
    if "metrics" in change:
        value = change["metrics"]
        (folder / "metrics.json").write_text(value if isinstance(value, str) else json.dumps(value))
    metrics = json.loads((folder / "metrics.json").read_text()) if "metrics" not in change else None
    if metrics is not None and ({"drop", "bucket", "overall"} & set(change)):
        results = metrics["test"]["speechbert"]
        results.pop(change.get("drop", ""), None)
        if "bucket" in change:
            results["wer_buckets"]["[0%, 10%)"] = change["bucket"]
        results["overall"].update(change.get("overall", {}))
        (folder / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        release_module.release(folder / "speechbert", "org/x", folder / "metrics.json", change.get("plot"),
                               system=change.get("system"))
    with pytest.raises(SystemExit) as exit_info:
        release_module.main(["--checkpoint", str(folder / "speechbert"), "--repo_id", "org/x", "--metrics",
                             str(folder / "metrics.json")] + (["--plot", change["plot"]] if "plot" in change else [])
                            + (["--system", change["system"]] if "system" in change else []))
    assert exit_info.value.code == 2


@pytest.mark.slow
def test_a_shipped_checkpoint_is_pushed_unchanged_with_its_card(tmp_path, released_checkpoint):
    """`checkpoints/NAME` goes to the Hub as it is (card and manifest included, one commit), checked first; a
    changed file, an argument it would ignore, or a restart step that is no model are refused before any push."""
    from sqa_train import release as release_module
    from sqa_train import shipped
    from sqa_train.cards import shipped_card

    checkpoint, _ = released_checkpoint
    bench = checkpoint.parent
    (checkpoint / "settings.json").write_text(json.dumps({"stage": "speechbert"}))
    (checkpoint / "DONE").write_text("finished\n")
    target = shipped.export(checkpoint, bench, "speechbert-test", output_dir=tmp_path / "shelf", card=shipped_card)
    with HubServer() as server:
        env = dict(os.environ, HF_ENDPOINT=server.url, HF_TOKEN="hf_test", HF_HUB_DISABLE_XET="1",
                   HF_HUB_OFFLINE="0", TRANSFORMERS_OFFLINE="0", HF_HOME=str(tmp_path / "push_home"),
                   PYTHONPATH=str(ROOT))
        out = run(["-m", "sqa_train.release", "--checkpoint", str(target), "--repo_id", "org/shipped"], env, ROOT)
        shas = json.loads(out.strip().splitlines()[-1])
        ((sha, files),) = server.repos["org/shipped"].commits
        assert shas["model_revision"] == shas["card_revision"] == sha
        local = {p.relative_to(target).as_posix(): p.read_bytes() for p in target.rglob("*") if p.is_file()}
        assert set(files) == set(local) and all(files[name] == local[name] for name in local)
        assert "README.md" in files and "shipped.json" in files

    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(release_module, "HfApi", lambda **kw: pytest.fail("the Hub was contacted before the check"))
    try:
        with pytest.raises(ValueError, match="released as it is with its own card: drop --metrics"):
            release_module.release(target, "org/x", tmp_path / "metrics.json")
        (target / "processor_config.json").write_text("{}")
        with pytest.raises(ValueError, match="changed: processor_config.json"):
            release_module.release(target, "org/x")
    finally:
        monkeypatch.undo()
