"""Shared tiny-config fixtures: every test builds its models from these in seconds on CPU."""

import numpy as np
import pytest
import torch
from transformers import BertTokenizer

from speechbert import SpeechBertConfig, SpeechBertFeatureExtractor, SpeechBertProcessor

SPECIAL = ["[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["who", "ruled", "normandy", "what", "is", "the", "a", "of", "in", "to", "and", "normans", "france",
         "region", "gave", "their", "name", "river", "city", "king", "?", ",", "."]
LETTERS = list("abcdefghijklmnopqrstuvwxyz") + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"]
VOCAB = SPECIAL + WORDS + LETTERS  # 101 entries: indices stay small like BERT's test vocab (99)


class SpeechBertTester:
    """The tiny configuration every model test uses (hidden 32, 2 layers, 4 heads), as BertModelTester does."""

    vocab_size = len(VOCAB)

    @staticmethod
    def config(**overrides) -> SpeechBertConfig:
        kwargs = dict(
            vocab_size=len(VOCAB),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            max_position_embeddings=128,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
            audio_encoder_hidden_size=16,
            audio_decoder_hidden_size=16,
            audio_token_id=VOCAB.index("[unused0]"),
            mask_token_id=VOCAB.index("[MASK]"),
            max_frames_per_segment=40,
        )
        kwargs.update(overrides)
        return SpeechBertConfig(**kwargs)


@pytest.fixture
def tester():
    return SpeechBertTester


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(VOCAB) + "\n")
    return BertTokenizer(str(path))


@pytest.fixture
def processor(tokenizer, tester):
    return SpeechBertProcessor(
        feature_extractor=SpeechBertFeatureExtractor(**tester.config().feature_extractor_kwargs()), tokenizer=tokenizer
    )


def make_passage(num_words: int, seed: int = 0, word_s: float = 0.25, gap_s: float = 0.05):
    """Noise 'speech' with `num_words` back-to-back word segments (a pause every 5 words) and their words."""
    rng = np.random.default_rng(seed)
    segments, t = [], 0.1
    for i in range(num_words):
        length = word_s * (0.6 + 0.8 * rng.random())
        segments.append((round(t, 3), round(t + length, 3)))
        t += length + (gap_s if i % 5 == 4 else 0.0)
    audio = (0.1 * rng.standard_normal(int((t + 0.3) * 16000))).astype(np.float32)
    words = [WORDS[i % 20] for i in range(num_words)]
    return audio, segments, words


@pytest.fixture
def passage():
    return make_passage(12)


def seeded(model_class, config, seed=0):
    torch.manual_seed(seed)
    return model_class(config).eval()
