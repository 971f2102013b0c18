"""Shared tiny-config fixtures: every test builds its models from these in seconds on CPU."""

import gzip
import json
import os
import shutil

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForQuestionAnswering, BertTokenizer

from speechbert import SpeechBertConfig, SpeechBertFeatureExtractor, SpeechBertProcessor

SPECIAL = ["[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["who", "ruled", "normandy", "what", "is", "the", "a", "of", "in", "to", "and", "normans", "france",
         "region", "gave", "their", "name", "river", "city", "king", "?", ",", "."]
LETTERS = list("abcdefghijklmnopqrstuvwxyz") + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"]
VOCAB = SPECIAL + WORDS + LETTERS  # 101 entries: indices stay small like BERT's test vocab (99)


def need(condition: bool, reason: str):
    """Skip a test whose tool is missing on this machine; in CI, which installs every tool, fail it instead."""
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def need_binaries(*names: str):
    missing = [name for name in names if shutil.which(name) is None]
    need(not missing, f"{' and '.join(missing)} not installed (apt-get install {' '.join(missing)})")


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

    @classmethod
    def inputs(cls, processor, num_words=(12, 7), **processor_kwargs):
        """Processor outputs (tensors) for one noise passage per entry of `num_words`, with their words and
        questions: what `model(**inputs)` takes."""
        passages = [make_passage(n, seed=i) for i, n in enumerate(num_words)]
        return processor(question=["who ruled normandy ?", "what is the city"][: len(passages)],
                         audio=[p[0] for p in passages], word_segments=[p[1] for p in passages],
                         words=[p[2] for p in passages], sampling_rate=16000, return_tensors="pt",
                         **processor_kwargs)

    @classmethod
    def prepare_config_and_inputs(cls, processor, num_words=(12, 7), **config_overrides):
        """`(config, inputs)`, as `BertModelTester.prepare_config_and_inputs` gives them."""
        return cls.config(**config_overrides), cls.inputs(processor, num_words)


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


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """Three spoken paragraphs (train / validation / test) built with the real recipe."""
    need_binaries("flite", "espeak-ng")
    from sqa_data.recipe import build_paragraph
    from sqa_data.speech import SpeechRecognizer

    contexts = {
        "train": "The Normans gave their name to Normandy, a region in France. Their duke Rollo ruled in 911.",
        "validation": "The river Rhine flows north through Basel and Cologne to the sea.",
        "test": "Oxygen was found by Scheele in 1771. It makes up a fifth of the air.",
    }
    questions = {"train": [("Who gave their name to Normandy?", "The Normans"), ("Who ruled?", "Rollo")],
                 "validation": [("Where does the Rhine flow?", "north")],
                 "test": [("Who found oxygen?", "Scheele"), ("How much of the air is oxygen?", "a fifth")]}
    root = tmp_path_factory.mktemp("corpus")
    (root / "shards").mkdir()
    recognizer = SpeechRecognizer()
    for split, context in contexts.items():
        qas = [{"id": f"{split}-{i}", "question": q, "answers": [{"text": a, "answer_start": context.index(a)}]}
               for i, (q, a) in enumerate(questions[split])]
        record = build_paragraph({"paragraph_id": f"{split}-0", "title": split, "context": context, "qas": qas},
                                 recognizer)
        with gzip.open(root / "shards" / f"{split}-00000.jsonl.gz", "wt") as f:
            f.write(json.dumps(record) + "\n")
    return root


@pytest.fixture(scope="session")
def tiny_text_bert(tmp_path_factory):
    """A tiny BERT QA checkpoint with a small vocabulary, standing in for MiniLM."""
    from transformers import BertTokenizer

    root = tmp_path_factory.mktemp("tiny_bert")
    (root / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    BertTokenizer(str(root / "vocab.txt")).save_pretrained(root)
    fields = SpeechBertTester.config().to_dict()
    config = BertConfig(**{k: v for k, v in fields.items() if k in BertConfig.__dataclass_fields__})
    torch.manual_seed(0)
    BertForQuestionAnswering(config).save_pretrained(root)
    return root
