"""Graft a pre-trained audio encoder onto a question-answering BERT trained on word embeddings.

Usage:
    python -m sqa_train.graft --qa outputs/oracle/asr_first_piece/oracle --encoder outputs/step1/cos_t005_norm1 \
        --output_dir outputs/finetune/graft_cos_soft [--config_overrides audio_code_mode=soft_word_embedding]

The `oracle` system of `run_sqa.py` fine-tunes SpeechBERT's QA path (BERT and its span head) on BERT's own word
embeddings at the audio positions, read from the transcript. Its BERT has learnt to answer from one word embedding
per spoken word; a step-1 audio encoder whose codes are word-like (`sqa_train.codes`) produces such embeddings from
the audio. The graft is a `SpeechBertForQuestionAnswering` checkpoint with BERT and the span head from `--qa` and the
audio encoder (and every audio and feature setting of the config) from `--encoder`: a text-first curriculum, which
`run_sqa.py --model_name_or_path` can evaluate as it is or fine-tune further on the audio. `--segmenter` also
takes the word segmenter of a `run_segmenter.py` checkpoint, so any QA checkpoint can be scored at its segments.
"""

import argparse
import json
import logging
from pathlib import Path

import torch
from safetensors.torch import load_file

from speechbert.configuration_speechbert import SpeechBertConfig
from speechbert.modeling_speechbert import SpeechBertForQuestionAnswering

from .models import load_tokenizer, overridden_config

logger = logging.getLogger(__name__)

# Config fields that describe BERT itself: the two checkpoints must agree on them.
BERT_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
               "max_position_embeddings", "type_vocab_size", "audio_token_id", "mask_token_id", "pad_token_id")


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    path = folder / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: no model.safetensors (expected a saved SpeechBERT checkpoint folder)")
    return load_file(str(path))


def graft(qa_dir, encoder_dir, config_overrides: str | None = None, segmenter_dir=None) -> SpeechBertForQuestionAnswering:
    """A `SpeechBertForQuestionAnswering` with BERT and `qa_outputs` from `qa_dir`, the audio encoder from
    `encoder_dir` and, when given, the word segmenter (weights and `segmenter_*` settings) from `segmenter_dir`.
    Raises `ValueError` when the two BERTs differ in shape, `qa_dir` has no span head or `segmenter_dir` no
    segmenter."""
    qa_dir, encoder_dir = Path(qa_dir), Path(encoder_dir)
    folders = [("--qa", qa_dir), ("--encoder", encoder_dir)]
    if segmenter_dir is not None:
        segmenter_dir = Path(segmenter_dir)
        folders.append(("--segmenter", segmenter_dir))
    for name, folder in folders:
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{name} {folder}: no config.json (expected a saved SpeechBERT checkpoint folder)")
    qa_config = json.loads((qa_dir / "config.json").read_text())
    config = SpeechBertConfig.from_pretrained(encoder_dir)
    differ = {k: (qa_config.get(k), getattr(config, k)) for k in BERT_FIELDS if qa_config.get(k) != getattr(config, k)}
    if differ:
        raise ValueError(f"--qa and --encoder hold different BERTs: {differ} (qa, encoder)")
    segmenter = {}
    if segmenter_dir is not None:
        found = json.loads((segmenter_dir / "config.json").read_text())
        if not found.get("word_segmenter"):
            raise ValueError(f"--segmenter {segmenter_dir}: its config has no word segmenter (run_segmenter.py)")
        for key, value in found.items():
            if key == "word_segmenter" or key.startswith("segmenter_"):
                setattr(config, key, value)
        segmenter = {k: v for k, v in _weights(segmenter_dir).items() if k.startswith("bert.word_segmenter.")}
    overridden_config(config, config_overrides)
    config.check_audio_fields()  # the segmenter's settings too, when no overrides follow
    config.architectures = ["SpeechBertForQuestionAnswering"]
    model = SpeechBertForQuestionAnswering(config)
    qa_weights, encoder_weights = _weights(qa_dir), _weights(encoder_dir)
    if "qa_outputs.weight" not in qa_weights:
        raise ValueError(f"--qa {qa_dir}: no qa_outputs weights (expected a fine-tuned question-answering checkpoint)")
    state = {k: v for k, v in qa_weights.items()
             if not k.startswith("bert.audio_encoder.") and not (segmenter and k.startswith("bert.word_segmenter."))}
    encoder = {k: v for k, v in encoder_weights.items() if k.startswith("bert.audio_encoder.")}
    if not encoder:
        raise ValueError(f"--encoder {encoder_dir}: no bert.audio_encoder weights")
    state.update(encoder)
    state.update(segmenter)
    missing, unexpected = model.load_state_dict(state, strict=False)
    # Only tied or non-persistent buffers may be missing; every weight comes from one of the two checkpoints.
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise ValueError(f"graft does not fit the model: missing {missing}, unexpected {unexpected}")
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--qa", required=True, help="fine-tuned QA checkpoint (run_sqa.py's oracle or speechbert)")
    parser.add_argument("--encoder", required=True, help="checkpoint whose audio encoder is taken (run_pretraining.py)")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--segmenter", default=None,
                        help="checkpoint whose word segmenter is taken too (run_segmenter.py's output)")
    parser.add_argument("--config_overrides", default=None,
                        help="config fields changed in the graft, as config.update_from_string takes them")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from speechbert.processing_speechbert import SpeechBertProcessor

    model = graft(args.qa, args.encoder, args.config_overrides, args.segmenter)
    out = Path(args.output_dir)
    model.save_pretrained(out)
    tokenizer = load_tokenizer(args.encoder)
    SpeechBertProcessor.for_config(model.config, tokenizer).save_pretrained(out)
    logger.info("grafted %s (audio encoder) onto %s (BERT, span head) in %s", args.encoder, args.qa, out)


if __name__ == "__main__":
    main()
