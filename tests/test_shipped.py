"""Shipped checkpoints (`sqa_train.shipped`): a finished step exported exactly (less a base's tensors, bit for bit) or in half precision,
restored into a fresh benchmark folder by the scripts themselves when its settings match (and not otherwise), the
steps after it then matching too; files checked against the manifest; bad exports refused."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from sqa_train import shipped
from sqa_train.stages import checkpoint_identity

from .test_training import common_args

FEW = ["--stage", "1", "--max_steps", "1", "--save_strategy", "no", "--max_length", "64", "--stride", "8",
       "--resume_from_checkpoint", "true", "--codes_eval_splits", "none"]


@pytest.fixture
def tiny_base(monkeypatch, tiny_text_bert):
    monkeypatch.setitem(shipped.BASES, "tiny", {"package": "tiny-bert (tests)", "path": str(tiny_text_bert)})
    return "tiny"


def no_training(monkeypatch):
    """Any Trainer.train call fails the test: a restored step must not train."""
    import transformers

    def refuse(*args, **kwargs):
        raise AssertionError("a step trained although a shipped checkpoint with its settings was there")

    monkeypatch.setattr(transformers.Trainer, "train", refuse)


@pytest.mark.slow
def test_a_shipped_step1_chain_is_restored_bit_for_bit_and_not_trained_again(tmp_path, tiny_corpus, tiny_text_bert,
                                                                               tiny_base, monkeypatch):
    import run_pretraining

    bench, shelf = tmp_path / "bench", tmp_path / "checkpoints"
    first = common_args(bench / "step1", tiny_corpus, tmp_path / "audio") + FEW + [
        "--text_model_name_or_path", str(tiny_text_bert), "--config_overrides", "audio_encoder_hidden_size=8"]
    run_pretraining.main(first)
    continued = common_args(bench / "step1_pitch", tiny_corpus, tmp_path / "audio") + FEW + [
        "--model_name_or_path", str(bench / "step1")]
    run_pretraining.main(continued)
    for name in ("step1", "step1_pitch"):
        target = shipped.export(bench / name / "stage1", bench, name, weights="exact", base=tiny_base,
                                output_dir=shelf)
        manifest = shipped.verify(target)
        assert manifest["stage"] == f"{name}/stage1" and manifest["weights"] == "exact"
        assert not (target / "model.safetensors").exists()  # not loadable as a model by mistake
        stored = load_file(target / shipped.STEP_WEIGHTS)
        # Step 1 trains the audio encoder and decoder; BERT's tensors are the base's and are not stored again.
        assert stored and all(k.startswith(("bert.audio_encoder.", "audio_decoder.", "cls.")) for k in stored)
        assert any(k.startswith("bert.encoder.") for k in manifest["from_base"])

    # A fresh benchmark folder (another machine): both steps are restored, bit for bit, and nothing trains.
    monkeypatch.setenv("SPEECHBERT_SHIPPED", str(shelf))
    no_training(monkeypatch)
    fresh = tmp_path / "fresh"
    run_pretraining.main([(fresh / "step1").as_posix() if a == (bench / "step1").as_posix() else a for a in first])
    assert checkpoint_identity(fresh / "step1") == checkpoint_identity(bench / "step1")
    run_pretraining.main(common_args(fresh / "step1_pitch", tiny_corpus, tmp_path / "audio") + FEW + [
        "--model_name_or_path", str(fresh / "step1")])
    assert checkpoint_identity(fresh / "step1_pitch") == checkpoint_identity(bench / "step1_pitch")
    assert json.loads((fresh / "step1_pitch" / "stage1" / "shipped.json").read_text())["name"] == "step1_pitch"

    # Another setting matches no shipped step: it trains (and is refused here, since training is switched off).
    with pytest.raises(AssertionError, match="a step trained"):
        run_pretraining.main(common_args(tmp_path / "other", tiny_corpus, tmp_path / "audio") + FEW + [
            "--text_model_name_or_path", str(tiny_text_bert), "--config_overrides", "audio_encoder_hidden_size=8",
            "--stage1_learning_rate", "5e-4"])
    assert not (tmp_path / "other" / "stage1" / "shipped.json").exists()
    # SPEECHBERT_SHIPPED=none turns the reuse off.
    monkeypatch.setenv("SPEECHBERT_SHIPPED", "none")
    with pytest.raises(AssertionError, match="a step trained"):
        run_pretraining.main([(tmp_path / "off").as_posix() if a == (bench / "step1").as_posix() else a
                              for a in first])


@pytest.mark.slow
def test_a_half_precision_checkpoint_loads_as_float32_and_later_steps_start_from_it(tmp_path, tiny_corpus,
                                                                                   tiny_text_bert, monkeypatch):
    import run_sqa

    bench, shelf = tmp_path / "bench", tmp_path / "checkpoints"
    args = common_args(bench / "sqa", tiny_corpus, tmp_path / "audio") + [
        "--text_model_name_or_path", str(tiny_text_bert), "--do_train", "--do_eval", "--systems", "speechbert",
        "--max_steps", "1", "--save_strategy", "no", "--max_length", "64", "--stride", "8",
        "--resume_from_checkpoint", "true"]
    run_sqa.main(args)
    step = bench / "sqa" / "speechbert"
    trained = load_file(step / "model.safetensors")
    target = shipped.export(step, bench, "speechbert", weights="half", dtype="float16", output_dir=shelf)
    shipped.verify(target)
    half = load_file(target / "model.safetensors")
    assert {v.dtype for v in half.values() if v.is_floating_point()} == {torch.float16}
    # The step itself now holds the rounded weights (so later steps start from what is shipped); float32 kept aside.
    rounded = load_file(step / "model.safetensors")
    assert rounded.keys() == trained.keys()
    for key, value in trained.items():
        assert rounded[key].dtype == value.dtype
        torch.testing.assert_close(rounded[key], value.to(torch.float16).to(value.dtype), rtol=0, atol=0)
    assert (step / "float32" / "model.safetensors").is_file()
    assert checkpoint_identity(step)["weights_sha1"] == shipped.read_manifest(target)["weights_sha1"]
    # Exporting again is a no-op; another step under the same name needs --replace.
    assert shipped.export(step, bench, "speechbert", output_dir=shelf) == target
    (bench / "sqa" / "speechbert" / "settings.json").write_text(json.dumps({"stage": "other"}))
    with pytest.raises(ValueError, match="already holds another step.*--replace"):
        shipped.export(step, bench, "speechbert", output_dir=shelf)
    # make benchmark's way: the shipped one is kept, the new step not shipped, and the run goes on.
    assert shipped.export(step, bench, "speechbert", output_dir=shelf, keep_existing=True) is None
    assert shipped.read_manifest(target)["weights_sha1"] == checkpoint_identity(step)["weights_sha1"]

    # A complete model: loaded in a fresh process with none of the repository, as float32.
    # (The repository's packages are made unimportable: the classes must come from the checkpoint's own code.)
    code = ("import sys; sys.modules.update(speechbert=None, sqa_train=None, sqa_data=None); "
            "from transformers import AutoModelForQuestionAnswering as A; "
            "m = A.from_pretrained(sys.argv[1], trust_remote_code=True); "
            "print(type(m).__name__, type(m).__module__.split('.')[0], m.dtype)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"))
    result = subprocess.run([sys.executable, "-c", code, str(target)], cwd=tmp_path, env=env, check=False,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-3:] == ["SpeechBertForQuestionAnswering", "transformers_modules", "torch.float32"]

    # A fresh benchmark folder restores the system and evaluates it without training, to the same figures.
    monkeypatch.setenv("SPEECHBERT_SHIPPED", str(shelf))
    (bench / "sqa" / "speechbert" / "settings.json").write_text((target / "settings.json").read_text())
    no_training(monkeypatch)
    fresh = tmp_path / "fresh"
    run_sqa.main([str(fresh / "sqa") if a == str(bench / "sqa") else a for a in args])
    assert checkpoint_identity(fresh / "sqa" / "speechbert") == checkpoint_identity(step)
    again = json.loads((fresh / "sqa" / "metrics.json").read_text())
    run_sqa.main(args)  # the rounded step, evaluated where it was trained
    assert again == json.loads((bench / "sqa" / "metrics.json").read_text())


def test_verify_and_restore_refuse_what_does_not_match(tmp_path, tiny_text_bert, tiny_base):
    bench = tmp_path / "bench"
    step = bench / "qa"
    step.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "vocab.txt"):
        (step / name).write_bytes((tiny_text_bert / name).read_bytes())
    with pytest.raises(ValueError, match="not a finished step"):
        shipped.export(step, bench, "qa", output_dir=tmp_path / "shelf")
    (step / "settings.json").write_text(json.dumps({"stage": "qa"}))
    (step / "DONE").write_text("finished\n")
    with pytest.raises(ValueError, match="is not inside --benchmark"):
        shipped.export(step, tmp_path / "elsewhere", "qa", output_dir=tmp_path / "shelf")
    with pytest.raises(ValueError, match="--base goes with --weights exact"):
        shipped.export(step, bench, "qa", weights="half", base=tiny_base, output_dir=tmp_path / "shelf")
    from sqa_train.cards import shipped_card

    target = shipped.export(step, bench, "qa", weights="exact", base=tiny_base, output_dir=tmp_path / "shelf",
                            card=shipped_card)
    manifest = shipped.verify(target)
    from huggingface_hub import ModelCard

    card = ModelCard.load(target / "README.md")  # Hub metadata that parses, and the attributions
    assert card.data.license == "apache-2.0" and "speechbert" in card.data.tags
    assert "CC BY-SA 4.0" in card.text and "all-MiniLM-L6-v2" in card.text and "restore" in card.text
    assert not load_file(target / shipped.STEP_WEIGHTS)  # every tensor is the base's
    assert manifest["weights_sha1"] == checkpoint_identity(step)["weights_sha1"]

    index = shipped.write_index(tmp_path / "shelf").read_text()
    assert "| [qa](qa/README.md) | `qa` | as trained |" in index and "1 checkpoints" in index
    shipped.verify(target)  # the index beside the checkpoints is not part of any
    (target / "vocab.txt").write_text("changed\n")
    with pytest.raises(ValueError, match="changed: vocab.txt"):
        shipped.verify(target)
    (target / "vocab.txt").write_bytes((tiny_text_bert / "vocab.txt").read_bytes())
    (target / "extra.json").write_text("{}")
    with pytest.raises(ValueError, match="not in the manifest: extra.json"):
        shipped.verify(target)
    (target / "extra.json").unlink()
    shipped.verify(target)
    with pytest.raises(ValueError, match="already holds a step"):
        shipped.restore(target, step)
    restored = shipped.restore(target, tmp_path / "fresh" / "qa")
    assert checkpoint_identity(restored) == checkpoint_identity(step)
    assert (restored / "DONE").is_file() and json.loads((restored / "settings.json").read_text()) == {"stage": "qa"}
    # A base that is not the one the checkpoint was shipped against: refused, not silently combined.
    shipped.BASES[tiny_base] = {"package": "tiny-bert (tests)", "path": str(tmp_path / "bench" / "qa" / "float32")}
    (bench / "qa" / "float32").mkdir()
    (bench / "qa" / "float32" / "model.safetensors").write_bytes(b"\0" * 8)
    with pytest.raises(ValueError, match="not the one it was shipped against"):
        shipped.restore(target, tmp_path / "fresh2" / "qa")
    with pytest.raises(FileNotFoundError, match="no shipped.json"):
        shipped.read_manifest(tmp_path)


@pytest.mark.slow
def test_recorded_figures_are_reproduced_from_the_shipped_files_alone(tmp_path, tiny_corpus, tiny_text_bert):
    """A shipped QA checkpoint carries what it scored (`figures`, from run_sqa.py's evaluation of those weights);
    `reproduce` evaluates the shipped folder again, no training, and finds the same figures; the card shows them."""
    import run_sqa
    from huggingface_hub import ModelCard

    from sqa_train.cards import shipped_card

    bench, shelf = tmp_path / "bench", tmp_path / "checkpoints"
    (bench).mkdir()
    (bench / "dataset").symlink_to(tiny_corpus)
    window = ["--max_length", "64", "--stride", "8"]
    args = common_args(bench / "sqa", tiny_corpus, tmp_path / "audio") + window + [
        "--text_model_name_or_path", str(tiny_text_bert), "--systems", "speechbert", "cascade", "--max_steps", "1",
        "--save_strategy", "no", "--resume_from_checkpoint", "true", "--do_train"]
    run_sqa.main(args)
    for system in ("speechbert", "cascade"):  # as make benchmark does: shipped (rounded) before it is evaluated
        shipped.export(bench / "sqa" / system, bench, system, output_dir=shelf, card=shipped_card)
    run_sqa.main(args + ["--do_eval"])
    for system in ("speechbert", "cascade"):
        shipped.add_figures(shelf / system, bench / "sqa" / "metrics.json", system, "a test run", card=shipped_card)
        shipped.verify(shelf / system)
        card = ModelCard.load(shelf / system / "README.md")
        recorded = json.loads((shelf / system / "metrics.json").read_text())
        assert card.data.eval_results and f"F1 {recorded['test']['overall']['f1']:.1f}" in card.text
    found = shipped.reproduce(bench, tmp_path / "again", folder=shelf, tolerance=0.05,
                              extra_args=window + ["--audio_cache_dir", str(tmp_path / "audio"), "--use_cpu", "true"])
    assert found == {"cascade": [], "speechbert": []}
    # Recorded again from another run, the earlier figures stay beside the new ones.
    metrics = json.loads((bench / "sqa" / "metrics.json").read_text())
    metrics["test"]["cascade"]["overall"]["f1"] += 1.0
    (tmp_path / "other.json").write_text(json.dumps(metrics))
    shipped.add_figures(shelf / "cascade", tmp_path / "other.json", "cascade", "a later run", card=shipped_card)
    recorded = json.loads((shelf / "cascade" / "metrics.json").read_text())
    assert [old["run"] for old in recorded["earlier"]] == ["a test run"]
    assert "| a test run |" in (shelf / "cascade" / "README.md").read_text()
    with pytest.raises(ValueError, match=r"has no test figures for system 'text'"):
        shipped.add_figures(shelf / "cascade", tmp_path / "other.json", "text", "x")
