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
    (checkpoint / "training_args.bin").write_bytes(b"x")
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
