"""Code quality (sqa_train.codes), the oracle-codes QA path (sqa_train.oracle) and the pre-training step fingerprint."""

import json

import numpy as np
import pytest
import torch

from sqa_train.codes import code_accuracy, markdown, word_initial_ids, write_codes_json
from tests.conftest import VOCAB, seeded


def test_word_initial_ids_skip_continuations_and_special_tokens(tokenizer):
    ids = set(word_initial_ids(tokenizer).tolist())
    vocab = tokenizer.get_vocab()
    assert vocab["normandy"] in ids and vocab["a"] in ids and vocab["?"] in ids
    for token in ("##a", "[PAD]", "[unused0]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"):
        assert vocab[token] not in ids, token


def test_code_accuracy_by_hand():
    embeddings = torch.eye(50)
    candidates = np.arange(5, 50)
    targets = torch.tensor([5, 6, 7, 8, 9, 10])
    codes = embeddings[targets].clone() * 3.0  # cosine ignores the scale: the nearest piece is the target
    codes[1] = embeddings[20] + 0.5 * embeddings[6]  # wrong: nearest is piece 20, the target second
    codes[2] = -embeddings[7]  # wrong and far: the target is the farthest of the 45 pieces
    voices = np.array(["awb", "awb", "slt", "slt", "slt", "rms"])
    result = code_accuracy(codes, targets, embeddings, candidates, seen={5, 6, 7}, voices=voices)
    assert result["segments"] == 6
    assert result["top1"] == pytest.approx(100 * 4 / 6, abs=0.01)
    assert result["top1_seen"] == pytest.approx(100 / 3, abs=0.01) and result["top1_unseen"] == 100
    assert result["seen_share"] == 50
    assert result["top10"] < 100  # the negated code misses even the top 10
    assert result["per_voice"]["awb"] == {"segments": 2, "top1": 50.0, "top10": 100.0}
    assert result["per_voice"]["rms"]["top1"] == 100
    assert result["target_norm"] == pytest.approx(float(embeddings[targets].norm(dim=1).mean()), rel=1e-3)
    assert result["code_norm"] > result["target_norm"] * 2  # the x3 codes dominate the mean
    assert "| validation | 6 |" in markdown({"validation": result})


def test_soft_top_mass_by_hand():
    from sqa_train.codes import soft_top_mass

    embeddings = torch.eye(70)
    codes = torch.stack([embeddings[3], embeddings[4] + embeddings[5]])  # sure of piece 3; split between 4 and 5
    mass = soft_top_mass(codes, embeddings, temperature=0.1)
    weights = (torch.nn.functional.normalize(codes, dim=1) @ embeddings.T / 0.1).softmax(-1)
    expected = {k: 100 * float(weights.sort(1, descending=True).values[:, :k].sum(1).mean()) for k in (1, 16, 64)}
    assert mass == {str(k): pytest.approx(v, abs=0.01) for k, v in expected.items()}
    assert mass["1"] < mass["16"] < mass["64"] < 100  # the split code has half its mass past the first piece


def test_soft_embedding_stats_by_hand():
    from sqa_train.codes import soft_embedding_stats

    embeddings = torch.eye(6) * 2
    codes = torch.stack([embeddings[3], embeddings[4] + embeddings[5]])  # sure of piece 3; split between 4 and 5
    targets = torch.tensor([3, 4])
    stats = soft_embedding_stats(codes, targets, embeddings, temperature=0.1, seen={3, 4})
    weights = (torch.nn.functional.normalize(codes, dim=1) @ torch.nn.functional.normalize(embeddings, dim=1).T
               / 0.1).softmax(-1)
    soft = weights @ embeddings
    assert stats["norm"] == pytest.approx(float(soft.norm(dim=1).mean()), abs=1e-4)
    cos = torch.nn.functional.cosine_similarity(soft, embeddings[targets], dim=1)
    assert stats["cosine_to_target"] == pytest.approx(float(cos.mean()), abs=1e-4)
    assert stats["seen_mass"] == pytest.approx(100 * float(weights[:, [3, 4]].sum(1).mean()), abs=0.01)
    assert stats["norm"] < 2  # the split code's soft embedding is shorter than a word's
    # Over the pieces {3, 4} only, the split code reads piece 4 alone: cosine 1 for both.
    only = soft_embedding_stats(codes, targets, embeddings, temperature=0.1, pieces=[3, 4])
    assert only["cosine_to_target"] == pytest.approx(1.0, abs=1e-3) and only["seen_mass"] is None


def test_code_accuracy_target_outside_candidates_never_counts():
    embeddings = torch.eye(8)
    result = code_accuracy(embeddings[[1, 2]], torch.tensor([1, 2]), embeddings, np.arange(2, 8))
    assert result["top1"] == 50 and result["top10"] == 50  # piece 1 is no candidate


def test_write_codes_json_merges_splits(tmp_path):
    path = tmp_path / "codes.json"
    write_codes_json(path, {"validation": {"top1": 1.0}})
    write_codes_json(path, {"test": {"top1": 2.0}})
    assert json.loads(path.read_text()) == {"validation": {"top1": 1.0}, "test": {"top1": 2.0}}


def _speechbert_checkpoint(path, tiny_text_bert, **overrides):
    from transformers import AutoTokenizer

    from speechbert import SpeechBertForPreTraining, SpeechBertProcessor

    tokenizer = AutoTokenizer.from_pretrained(tiny_text_bert)
    torch.manual_seed(0)
    model, _ = SpeechBertForPreTraining.from_text_bert(tiny_text_bert, tokenizer=tokenizer,
                                                       audio_encoder_hidden_size=8, **overrides)
    model.save_pretrained(path)
    SpeechBertProcessor.for_config(model.config, tokenizer).save_pretrained(path)
    return model


@pytest.mark.slow
def test_codes_cli_on_the_tiny_corpus(tmp_path, tiny_corpus, tiny_text_bert, capsys):
    from sqa_data.dataset import read_records
    from sqa_train.codes import main

    model_dir = tmp_path / "model"
    _speechbert_checkpoint(model_dir, tiny_text_bert)
    results = main(["--model", str(model_dir), "--dataset", str(tiny_corpus), "--split", "validation", "test",
                    "--audio_cache_dir", str(tmp_path / "audio")])
    saved = json.loads((model_dir / "codes.json").read_text())
    assert set(saved) == {"validation", "test"} and saved == json.loads(json.dumps(results))
    records = read_records(tiny_corpus)
    for split in ("validation", "test"):
        r = saved[split]
        assert r["segments"] == sum(len(rec["ref_words"]) for rec in records[split])
        assert 0 <= r["top1"] <= r["top10"] <= 100
        assert r["seen_share"] + 0 >= 0 and set(r["per_voice"]) == {rec["voice"] for rec in records[split]}
        assert r["code_norm"] > 0 and r["target_norm"] > 0
        assert 0 < r["soft_top_mass"]["1"] <= r["soft_top_mass"]["16"] <= r["soft_top_mass"]["64"] <= 100
        assert r["soft_embedding"]["norm"] > 0 and -1 <= r["soft_embedding"]["cosine_to_target"] <= 1
    assert "| validation |" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------- oracle codes
@pytest.mark.parametrize("option, limit", [("--max_paragraphs", "0"), ("--max_paragraphs", "-3"),
                                           ("--num_workers", "0")])
def test_codes_cli_counts_must_be_positive(tmp_path, capsys, option, limit):
    """--max_paragraphs 0 failed later as "no reference word segments"; --num_workers 0 in the thread pool, after
    the model and the corpus were loaded."""
    from sqa_train import codes

    with pytest.raises(SystemExit) as exit_info:
        codes.main(["--model", str(tmp_path), "--dataset", "embedded", option, limit])
    assert exit_info.value.code == 2
    assert f"argument {option}: expected a positive integer, got '{limit}'" in capsys.readouterr().err


def test_oracle_model_places_word_embeddings_at_audio_positions(tester, tokenizer):
    from speechbert import SpeechBertForQuestionAnswering
    from sqa_train.oracle import OracleSpeechBertForQuestionAnswering, word_pieces

    config = tester.config()
    oracle = seeded(OracleSpeechBertForQuestionAnswering, config)
    plain = seeded(SpeechBertForQuestionAnswering, config)
    words = ["normandy", "ruled", "xyz"]  # "xyz" is three pieces: x ##y ##z
    pieces = torch.from_numpy(word_pieces(tokenizer, words))[None]  # (1, 3, P)
    assert (pieces[0, 2] >= 0).sum() == 3
    audio = config.audio_token_id
    input_ids = torch.tensor([[VOCAB.index("[CLS]"), VOCAB.index("who"), VOCAB.index("[SEP]"), audio, audio, audio,
                               VOCAB.index("[SEP]")]])
    table = plain.bert.embeddings.word_embeddings.weight
    for mode in ("first_piece", "mean_pieces"):
        oracle.oracle_mode = mode
        got = oracle(input_ids=input_ids, oracle_pieces=pieces).start_logits
        expected_codes = torch.stack([table[p[p >= 0]].mean(0) if mode == "mean_pieces" else table[p[0]]
                                      for p in pieces[0]])
        embeds = plain.bert.embeddings.word_embeddings(input_ids).clone()
        embeds[0, 3:6] = expected_codes
        with torch.no_grad():
            want = plain(inputs_embeds=embeds, input_ids=None).start_logits
        torch.testing.assert_close(got.detach(), want)
    with pytest.raises(ValueError, match="audio positions per row"):
        oracle(input_ids=input_ids, oracle_pieces=pieces[:, :2])


@pytest.mark.slow
@pytest.mark.parametrize("segments", ["asr", "ref"])
def test_run_sqa_oracle_system(tmp_path, tiny_corpus, tiny_text_bert, segments):
    import run_sqa
    from tests.test_training import common_args

    out = tmp_path / "sqa"
    run_sqa.main(common_args(out, tiny_corpus, tmp_path / "audio") + [
        "--text_model_name_or_path", str(tiny_text_bert), "--do_train", "--do_eval", "--max_steps", "2",
        "--save_strategy", "no", "--max_length", "64", "--stride", "8", "--systems", "oracle",
        "--oracle_codes", "mean_pieces", "--oracle_segments", segments])
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["test"]) == {"oracle"} and metrics["test"]["oracle"]["overall"]["count"] == 2
    finished = json.loads((out / "oracle" / "settings.json").read_text())
    assert (out / "oracle" / "DONE").exists()
    assert finished["oracle_codes"] == "mean_pieces" and finished["oracle_segments"] == segments
    predictions = json.loads((out / "predictions_test.json").read_text())["oracle"]
    from sqa_data.dataset import read_records

    words = read_records(tiny_corpus)["test"][0][f"{segments}_words"]
    for found in predictions.values():  # the answer is made of the chosen segments' words
        assert found["prediction_text"] and set(found["prediction_text"].split()) <= set(words)
    assert "oracle codes" in (out / "results.md").read_text()


def test_oracle_arguments_are_checked():
    import run_sqa

    with pytest.raises(ValueError, match="--oracle_codes 'last'"):
        run_sqa.ModelArguments(oracle_codes="last", text_model_name_or_path="x")
    with pytest.raises(ValueError, match="--oracle_segments 'both'"):
        run_sqa.ModelArguments(oracle_segments="both", text_model_name_or_path="x")


# ----------------------------------------------------------------------------------------- step fingerprint
@pytest.mark.slow
def test_pretraining_step_with_other_settings_is_not_reused(tmp_path, tiny_corpus, tiny_text_bert):
    import run_pretraining
    from tests.test_training import common_args

    pre = tmp_path / "pre"
    base = common_args(pre, tiny_corpus, tmp_path / "audio") + [
        "--text_model_name_or_path", str(tiny_text_bert), "--stage", "1", "--max_steps", "1", "--save_strategy",
        "no", "--resume_from_checkpoint", "true"]
    run_pretraining.main(base + ["--config_overrides", "audio_encoder_hidden_size=8"])
    settings = json.loads((pre / "stage1" / "settings.json").read_text())
    assert settings["config"]["audio_encoder_hidden_size"] == 8 and (pre / "stage1" / "DONE").exists()
    codes = json.loads((pre / "codes.json").read_text())
    assert set(codes) == {"validation"} and codes == json.loads((pre / "stage1" / "codes.json").read_text())
    stamp = (pre / "stage1" / "model.safetensors").stat().st_mtime_ns

    run_pretraining.main(base + ["--config_overrides", "audio_encoder_hidden_size=8"])  # same settings: reused
    assert (pre / "stage1" / "model.safetensors").stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match=r"other settings \(config.audio_encoder_hidden_size: 8 -> 12"):
        run_pretraining.main(base + ["--config_overrides", "audio_encoder_hidden_size=12"])
    with pytest.raises(ValueError, match="stage1_learning_rate|learning_rate: 0.001 -> 0.01"):
        run_pretraining.main(base + ["--config_overrides", "audio_encoder_hidden_size=8",
                                     "--stage1_learning_rate", "0.01"])
    assert (pre / "stage1" / "model.safetensors").stat().st_mtime_ns == stamp
    # A step finished by a version that did not record its settings is not trusted either.
    (pre / "stage1" / "settings.json").unlink()
    with pytest.raises(ValueError, match="without the settings it was made with"):
        run_pretraining.main(base + ["--config_overrides", "audio_encoder_hidden_size=8"])


def test_a_config_field_added_after_a_step_ran_counts_only_at_its_default(tmp_path):
    """A finished step recorded before a config field existed is still itself when the field sits at its default
    (which keeps the old behaviour); set to anything else, the step is refused and the message names the field."""
    from sqa_train.stages import check_stage_settings, config_defaults

    defaults = config_defaults()
    assert defaults["soft_word_embedding_top_k"] == 0 and defaults["soft_word_embedding_pieces"] is None
    old_config = {k: v for k, v in defaults.items() if not k.startswith("soft_word_embedding")}
    folder = tmp_path / "stage1"
    folder.mkdir()
    (folder / "settings.json").write_text(json.dumps({"stage": "stage1", "config": old_config}))
    (folder / "DONE").touch()
    assert check_stage_settings(folder, {"stage": "stage1", "config": dict(defaults)})
    # Nor does a key that says nothing about training (use_cache, saved either way) tell steps apart.
    assert check_stage_settings(folder, {"stage": "stage1", "config": {**defaults, "use_cache": not
                                                                       old_config.get("use_cache", True)}})
    changed = {**defaults, "soft_word_embedding_top_k": 16}
    with pytest.raises(ValueError, match=r"config.soft_word_embedding_top_k: '\(absent\)' -> 16"):
        check_stage_settings(folder, {"stage": "stage1", "config": changed})
    # A field the step did record is compared as always, default or not; so is a key that is no config field.
    with pytest.raises(ValueError, match=r"config.audio_frame_stack: \d+ -> \d+"):
        check_stage_settings(folder, {"stage": "stage1", "config": {**defaults, "audio_frame_stack":
                                                                    defaults["audio_frame_stack"] + 2}})
    with pytest.raises(ValueError, match=r"config.not_a_field: '\(absent\)' -> None"):
        check_stage_settings(folder, {"stage": "stage1", "config": {**defaults, "not_a_field": None}})
