"""`sqa_train.graft`: an audio encoder from one checkpoint, BERT and the span head from another."""

import pytest
import torch
from transformers import AutoModelForQuestionAnswering

from speechbert.modeling_speechbert import SpeechBertForPreTraining, SpeechBertForQuestionAnswering
from sqa_train.graft import graft, main

from .conftest import seeded


@pytest.fixture
def checkpoints(tmp_path, tester, tokenizer):
    qa = seeded(SpeechBertForQuestionAnswering, tester.config(), seed=1)
    pre = seeded(SpeechBertForPreTraining, tester.config(audio_frame_stack=2), seed=2)
    qa.save_pretrained(tmp_path / "qa")
    pre.save_pretrained(tmp_path / "pre")
    tokenizer.save_pretrained(tmp_path / "pre")
    return tmp_path, qa, pre


def test_graft_takes_each_part_from_its_checkpoint(checkpoints):
    root, qa, pre = checkpoints
    main(["--qa", str(root / "qa"), "--encoder", str(root / "pre"), "--output_dir", str(root / "out"),
          "--config_overrides", "audio_code_mode=soft_word_embedding"])
    model = AutoModelForQuestionAnswering.from_pretrained(root / "out", trust_remote_code=True)
    assert model.config.audio_code_mode == "soft_word_embedding"
    assert model.config.audio_frame_stack == 2  # audio settings come with the encoder
    got = model.state_dict()
    for key, value in qa.state_dict().items():
        if not key.startswith("bert.audio_encoder."):
            torch.testing.assert_close(got[key], value, msg=key)
    encoder = {k: v for k, v in pre.state_dict().items() if k.startswith("bert.audio_encoder.")}
    assert encoder
    for key, value in encoder.items():
        torch.testing.assert_close(got[key], value, msg=key)
    assert (root / "out" / "processor_config.json").is_file()
    # Grafting again from the same checkpoints writes the same weights, so a fine-tune that started from the graft
    # (its run_sqa fingerprint holds the start's weights sha1) is still recognised after a rerun of the recipe.
    from sqa_train.stages import checkpoint_identity

    first = checkpoint_identity(root / "out")
    main(["--qa", str(root / "qa"), "--encoder", str(root / "pre"), "--output_dir", str(root / "out"),
          "--config_overrides", "audio_code_mode=soft_word_embedding"])
    assert checkpoint_identity(root / "out") == first


def test_graft_refuses_mismatched_or_wrong_checkpoints(checkpoints, tester):
    root, _, pre = checkpoints
    seeded(SpeechBertForQuestionAnswering, tester.config(hidden_size=48, intermediate_size=64)).save_pretrained(
        root / "wide")
    with pytest.raises(ValueError, match="different BERTs.*hidden_size"):
        graft(root / "wide", root / "pre")
    with pytest.raises(ValueError, match="no qa_outputs"):
        graft(root / "pre", root / "pre")
    with pytest.raises(FileNotFoundError, match="--encoder .*missing.*no config.json"):
        graft(root / "qa", root / "missing")
    with pytest.raises(ValueError, match="audio_code_mode"):
        graft(root / "qa", root / "pre", "audio_code_mode=loud")


def test_graft_takes_a_segmenter_too(checkpoints, tester):
    root, qa, _ = checkpoints
    with_segmenter = seeded(SpeechBertForPreTraining, tester.config(word_segmenter=True, segmenter_hidden_size=8,
                                                                    segmenter_threshold=0.3), seed=3)
    with_segmenter.save_pretrained(root / "seg")
    model = graft(root / "qa", root / "pre", segmenter_dir=root / "seg")
    assert model.config.word_segmenter and model.config.segmenter_threshold == 0.3
    for key, value in with_segmenter.bert.word_segmenter.state_dict().items():
        torch.testing.assert_close(model.bert.word_segmenter.state_dict()[key], value)
    torch.testing.assert_close(model.qa_outputs.weight, qa.qa_outputs.weight)
    with pytest.raises(ValueError, match="has no word segmenter"):
        graft(root / "qa", root / "pre", segmenter_dir=root / "pre")
