import json

import pytest

from speechbert import SpeechBertConfig, SpeechBertForQuestionAnswering
from speechbert.configuration_speechbert import SPEECHBERT_AUTO_MAP


@pytest.mark.parametrize(
    "field, value",
    [
        ("sampling_rate", 0),
        ("num_mfcc", -1),
        ("max_frames_per_segment", 0),
        ("audio_frame_stack", 0),
        ("audio_encoder_hidden_size", 0),
        ("audio_encoder_type", "transformer"),
        ("audio_decoder_type", "rnn"),
        ("feature_size", 40),
        ("hop_ms", 30.0),
        ("alignment_loss_weight", -0.5),
        ("audio_token_id", 99999),
        ("audio_token_id", 0),
        ("mask_token_id", 1),
        ("alignment_loss_type", "l2"),
        ("alignment_temperature", 0.0),
        ("audio_code_mode", "soft"),
        ("norm_loss_weight", -1.0),
        ("alignment_num_negatives", -1),
        ("soft_word_embedding_top_k", -2),
        ("soft_word_embedding_pieces", [3, 3]),
        ("soft_word_embedding_pieces", [-1]),
        ("soft_word_embedding_pieces", [30522]),
        ("soft_word_embedding_pieces", []),
        # NaN compared false with every bound and passed; a NaN loss weight then trained on NaN losses.
        ("window_ms", float("nan")),
        ("norm_loss_weight", float("nan")),
        ("reconstruction_loss_weight", float("inf")),
        ("alignment_temperature", float("nan")),
    ],
)
def test_invalid_values_name_field_and_value(field, value):
    with pytest.raises(ValueError) as error:
        SpeechBertConfig(**{field: value})
    message = str(error.value)
    assert field in message and str(value) in message


@pytest.mark.parametrize("value", [[True], "train", [1.5]])
def test_soft_word_embedding_pieces_of_the_wrong_type_are_named(value):
    from huggingface_hub.errors import StrictDataclassFieldValidationError

    with pytest.raises((ValueError, StrictDataclassFieldValidationError), match="soft_word_embedding_pieces"):
        SpeechBertConfig(soft_word_embedding_pieces=value)


def test_sampled_negatives_need_the_cosine_softmax():
    with pytest.raises(ValueError, match=r"alignment_num_negatives=64 .* alignment_loss_type is 'l1'"):
        SpeechBertConfig(alignment_num_negatives=64)
    config = SpeechBertConfig(alignment_loss_type="cosine_softmax", alignment_num_negatives=64)
    assert config.alignment_num_negatives == 64


def test_defaults_match_the_paper_front_end():
    config = SpeechBertConfig()
    assert (config.sampling_rate, config.num_mfcc, config.feature_size) == (16000, 13, 39)
    assert (config.window_ms, config.hop_ms) == (25.0, 10.0)
    assert config.audio_encoder_bidirectional and config.audio_encoder_type == "gru"


def test_full_auto_map_whatever_class_is_saved(tmp_path, tester):
    model = SpeechBertForQuestionAnswering(tester.config())
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["auto_map"] == SPEECHBERT_AUTO_MAP
    assert saved["model_type"] == "speechbert"
    for name in ("configuration_speechbert.py", "modeling_speechbert.py"):
        assert (tmp_path / name).exists()


def test_round_trip_keeps_audio_fields(tmp_path, tester):
    config = tester.config(audio_frame_stack=3, audio_encoder_type="lstm", reconstruction_loss_weight=0.5)
    config.save_pretrained(tmp_path)
    loaded = SpeechBertConfig.from_pretrained(tmp_path)
    assert loaded.audio_frame_stack == 3 and loaded.audio_encoder_type == "lstm"
    assert loaded.reconstruction_loss_weight == 0.5


def test_config_overrides_of_nan_are_refused_where_the_scripts_check_them():
    """`--config_overrides norm_loss_weight=nan` parses through update_from_string; the check the scripts run after
    it (`check_audio_fields`) names it."""
    config = SpeechBertConfig()
    config.update_from_string("norm_loss_weight=nan")
    with pytest.raises(ValueError, match="norm_loss_weight must be a finite number >= 0, got nan"):
        config.check_audio_fields()
