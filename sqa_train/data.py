"""Training and evaluation features for SpeechBERT and the text (cascade) baselines, from rows of the corpus schema
(`sqa_data.dataset`).

Passage audio becomes MFCC frames once per paragraph (`PassageFrames`); a window item only names its paragraph and
segment range, and the collators gather the frames of a batch, so memory holds frames, not padded copies per question.
"""

import logging
from dataclasses import dataclass

import numpy as np
import torch

from speechbert.text_qa import pad_tokens, text_windows
from sqa_data.dataset import passage_audio
from sqa_data.normalize import answer_word_span, normalize

logger = logging.getLogger(__name__)


def load_corpus(name_or_path):
    """`"embedded"` (the shipped default), a saved `DatasetDict` folder, or a folder of record shards."""
    from pathlib import Path

    from datasets import load_from_disk

    from sqa_data.dataset import read_records, to_dataset_dict
    from sqa_data.embedded import load_embedded

    if name_or_path == "embedded":
        return load_embedded()
    path = Path(name_or_path)
    if (path / "dataset_dict.json").exists():
        return load_from_disk(str(path))
    if path.is_dir():
        return to_dataset_dict(read_records(path))
    raise FileNotFoundError(f"dataset {name_or_path!r}: expected 'embedded', a save_to_disk folder or record shards")


def leave_out_voices(rows, voices, option="--exclude_train_voices"):
    """`rows` without those read by `voices`. A voice no row has is an error naming the voices there are (a typo
    would otherwise leave every voice in, silently)."""
    voices = set(voices or ())
    if not voices:
        return list(rows)
    present = {row["voice"] for row in rows}
    unknown = sorted(voices - present)
    if unknown:
        raise ValueError(f"{option} {unknown}: no training passage is read by {'it' if len(unknown) == 1 else 'them'}; "
                         f"the voices there are {sorted(present)}")
    return [row for row in rows if row["voice"] not in voices]


def spoken_answers(row) -> list[str]:
    """The reference answers as the words a reader says ("1973" -> "nineteen seventy three"): what the predicted
    words, always spoken-form, are compared with."""
    if row["source"] == "spoken-squad-text":
        return list(row["answers"]["text"])  # already a spoken-form transcript
    words = normalize(row["context"])
    spoken = []
    for start, text in zip(row["answers"]["answer_start"], row["answers"]["text"]):
        span = answer_word_span(words, start, start + len(text))
        spoken.append(" ".join(w.text for w in words[span[0] : span[1] + 1]) if span else text)
    return spoken


def segment_times(row, kind: str) -> np.ndarray:
    """(n, 2) start/end seconds of the `asr` or `ref` words of a row."""
    return np.stack([np.asarray(row[f"{kind}_starts"], np.float64), np.asarray(row[f"{kind}_ends"], np.float64)], 1)


class PassageFrames:
    """MFCC frames of every passage (computed once) and the frame range of each of its word segments."""

    def __init__(self, feature_extractor, audio_cache_dir=None):
        self.feature_extractor = feature_extractor
        self.audio_cache_dir = audio_cache_dir
        self.frames: dict[str, np.ndarray] = {}
        self.num_samples: dict[str, int] = {}
        self.ranges: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}

    def passage(self, row) -> np.ndarray:
        """(T, feature_size) frames of the row's passage, computed on first use."""
        key = row["paragraph_id"]
        if key not in self.frames:
            fe = self.feature_extractor
            audio = fe.to_mono(passage_audio(row, cache_dir=self.audio_cache_dir))
            self.frames[key] = fe.frame_features(audio)
            self.num_samples[key] = audio.size
        return self.frames[key]

    def prefetch(self, rows, num_workers: int | None = None):
        """Compute the frames of every row's passage not yet held, `num_workers` passages at a time: flite, sox and
        libsndfile run outside the GIL, so threads use every core. `None` or 1 computes them one by one on first use."""
        if not num_workers or num_workers < 2:
            return
        from concurrent.futures import ThreadPoolExecutor

        todo = {row["paragraph_id"]: row for row in rows if row["paragraph_id"] not in self.frames}
        with ThreadPoolExecutor(max_workers=num_workers) as pool:
            for _ in pool.map(self.passage, todo.values()):
                pass

    def add(self, row, kind: str = "asr"):
        """Frames of the row's passage and the (first frame, frame count) of its `kind` segments."""
        key = row["paragraph_id"]
        fe = self.feature_extractor
        self.passage(row)
        if (key, kind) not in self.ranges:
            first, last = fe.segment_frames(segment_times(row, kind), self.num_samples[key])
            self.ranges[(key, kind)] = first, np.minimum(last - first, fe.max_frames_per_segment)
        return self.ranges[(key, kind)]

    def gather_lengths(self, items, kind_key="kind") -> torch.Tensor:
        """(B, S) frame counts of the items' segments (0 for padding), as `gather` gives them."""
        counts = [self.ranges[(item["paragraph_id"], item[kind_key])][1][item["seg_start"] : item["seg_end"]]
                  for item in items]
        lengths = np.zeros((len(items), max(len(c) for c in counts)), np.int64)
        for i, count in enumerate(counts):
            lengths[i, : len(count)] = count
        return torch.from_numpy(lengths)

    def gather(self, items, kind_key="kind") -> tuple[torch.Tensor, torch.Tensor]:
        """(B, S, T, F) features and (B, S) lengths for items naming `paragraph_id`, `seg_start`, `seg_end`."""
        lengths = self.gather_lengths(items, kind_key)
        firsts = [self.ranges[(item["paragraph_id"], item[kind_key])][0][item["seg_start"] : item["seg_end"]]
                  for item in items]
        counts = [row[: len(first)].numpy() for row, first in zip(lengths, firsts)]
        num_frames = int(lengths.max())
        size = self.feature_extractor.feature_size
        features = np.zeros((len(items), lengths.shape[1], num_frames, size), np.float32)
        steps = np.arange(num_frames)
        for i, (item, first, count) in enumerate(zip(items, firsts, counts)):
            frames = self.frames[item["paragraph_id"]]
            index = np.minimum(first[:, None] + steps[None, :], len(frames) - 1)  # (S_i, T)
            block = frames[index]
            block[steps[None, :] >= count[:, None]] = 0.0
            features[i, : len(count)] = block
        return torch.from_numpy(features), lengths


class PassageCodes:
    """A frozen audio encoder's code of every segment of a passage, computed once per passage (batched) instead of
    once per window and epoch: a passage's segments are encoded alike in every window that holds them, and the
    encoder is the costliest part of a SpeechBERT training step on CPU."""

    def __init__(self, frames: PassageFrames, passages_per_call: int = 8):
        self.frames = frames
        self.passages_per_call = passages_per_call
        self.codes: dict[tuple[str, str], torch.Tensor] = {}

    def encode(self, model, items):
        """Codes of every passage the items name (`paragraph_id`, `kind`, frames already added) not yet held, with
        `model`'s audio encoder in eval mode and without gradients. Returns how many passages were encoded."""
        base = getattr(model, model.base_model_prefix, model)
        todo = list(dict.fromkeys((item["paragraph_id"], item["kind"]) for item in items))
        todo = [key for key in todo if key not in self.codes]
        was_training = base.training
        base.eval()
        try:
            with torch.no_grad():
                for i in range(0, len(todo), self.passages_per_call):
                    chunk = todo[i : i + self.passages_per_call]
                    whole = [{"paragraph_id": key, "kind": kind, "seg_start": 0,
                              "seg_end": len(self.frames.ranges[(key, kind)][0])} for key, kind in chunk]
                    features, lengths = self.frames.gather(whole)
                    codes = base.encode_audio(features, lengths)  # (N, H), row-major over real segments
                    placed = codes.new_zeros((*lengths.shape, codes.shape[-1]))
                    placed[lengths > 0] = codes
                    for key, row, item in zip(chunk, placed, whole):
                        self.codes[key] = row[: item["seg_end"]].float()
        finally:
            base.train(was_training)
        return len(todo)

    def gather(self, items) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, S, hidden) codes and (B, S) frame counts (0 for padding) of the items' segments."""
        lengths = self.frames.gather_lengths(items)
        codes = torch.zeros((*lengths.shape, next(iter(self.codes.values())).shape[-1]))
        for i, item in enumerate(items):
            held = self.codes[(item["paragraph_id"], item["kind"])][item["seg_start"] : item["seg_end"]]
            codes[i, : len(held)] = held
        return codes, lengths


def add_model_segments(rows, model, frames: PassageFrames):
    """Give every row `model_starts` / `model_ends`: the word segments the model's word segmenter finds in its passage
    (one call per passage), and `model_words`: for scoring only, the ASR words whose middle falls in each segment
    (joined; "" for none), so an answer span's text is the recognised speech inside it, as for the ASR-segment
    system. Nothing but the audio decides the segments."""
    base = getattr(model, model.base_model_prefix, model)
    found = {}
    for row in rows:
        key = row["paragraph_id"]
        if key not in found:
            segments = base.segment_words(frames.passage(row))[0]
            starts = np.array([s for s, _ in segments], np.float64)
            middles = (np.asarray(row["asr_starts"], np.float64) + np.asarray(row["asr_ends"], np.float64)) / 2
            owner = np.searchsorted(starts, middles, side="right") - 1  # the segment starting last before each middle
            words = [[] for _ in segments]
            for word, i, middle in zip(row["asr_words"], owner, middles):
                if i >= 0 and middle < segments[i][1]:
                    words[i].append(word)
            found[key] = ([s for s, _ in segments], [e for _, e in segments], [" ".join(w) for w in words])
        row["model_starts"], row["model_ends"], row["model_words"] = found[key]
    return len(found)


# ----------------------------------------------------------------------------------------------- SpeechBERT QA
def speechbert_qa_items(rows, processor, frames: PassageFrames, max_length, stride, max_question_length=64,
                        train=False, segments="asr"):
    """Window items for SpeechBERT QA over the passage's `segments` (ASR word times by default: what a system has
    at test time). Training items carry start/end positions; questions whose answer has no time span or overlaps
    no segment are skipped from training (and counted)."""
    items, skipped = [], 0
    tokenizer = processor.tokenizer
    questions = tokenizer([r["question"] for r in rows], add_special_tokens=False)["input_ids"]
    for example, (row, q_ids) in enumerate(zip(rows, questions)):
        times = segment_times(row, segments)
        if len(times) == 0:
            skipped += 1
            continue
        frames.add(row, segments)
        q_ids = q_ids[:max_question_length]
        answer = None
        if train:
            try:
                start, end = row["answers"]["start_time"][0], row["answers"]["end_time"][0]
                answer = [processor.answer_segments(times, (start, end), row["audio_duration"])]
            except (ValueError, IndexError):
                skipped += 1
                continue
        windows = processor.plan_windows([len(q_ids)], [len(times)], max_length, stride)
        arrays = processor.encode_windows(windows, [q_ids], [times], answer_segments=answer)
        for w, (_, a, b) in enumerate(windows):
            length = int(arrays["attention_mask"][w].sum())
            item = {
                "input_ids": arrays["input_ids"][w, :length],
                "token_type_ids": arrays["token_type_ids"][w, :length],
                "paragraph_id": row["paragraph_id"],
                "kind": segments,
                "seg_start": a,
                "seg_end": b,
                "example": example,
                "audio_offset": len(q_ids) + 2,
            }
            if train:
                item["start_positions"] = int(arrays["start_positions"][w])
                item["end_positions"] = int(arrays["end_positions"][w])
            items.append(item)
    return items, skipped


def span_labels(items) -> dict[str, torch.Tensor]:
    """The answer span labels of QA training items (`start_positions`, `end_positions`); none for eval items."""
    if "start_positions" not in items[0]:
        return {}
    return {key: torch.tensor([item[key] for item in items]) for key in ("start_positions", "end_positions")}


@dataclass
class SpeechBertQACollator:
    """Window items -> a QA batch: tokens, the segments' frames (or, given `codes`, their cached codes) and labels."""

    frames: PassageFrames
    pad_token_id: int
    codes: PassageCodes | None = None

    def __call__(self, items):
        batch = pad_tokens(items, self.pad_token_id)
        if self.codes is not None:
            batch["audio_codes"], batch["audio_feature_lengths"] = self.codes.gather(items)
        else:
            batch["audio_features"], batch["audio_feature_lengths"] = self.frames.gather(items)
        batch.update(span_labels(items))
        return batch


# ----------------------------------------------------------------------------------------------- text QA (cascade)
def text_qa_items(rows, tokenizer, words_key, max_length, stride, train=False):
    """Window items for a text BERT QA model reading the `asr` or `ref` words of each passage (run_qa.py style:
    question first, passage truncated into overlapping windows). Answers map to words by time, the same way
    SpeechBERT's do, so both systems learn the same spans."""
    from speechbert.processing_speechbert import SpeechBertProcessor

    keep = sum(1 for r in rows if r[f"{words_key}_words"])
    windows = text_windows(tokenizer, [r["question"] for r in rows], [r[f"{words_key}_words"] for r in rows],
                           max_length, stride)
    items, skipped_examples = [], set()
    for item in windows:
        example = item["example"]
        row = rows[example]
        token_word = item["token_word"]
        if train:
            try:
                times = segment_times(row, words_key)
                first, last = SpeechBertProcessor.answer_segments(
                    times, (row["answers"]["start_time"][0], row["answers"]["end_time"][0]),
                    row["audio_duration"] if row["audio_duration"] > 0 else float("inf"))
            except (ValueError, IndexError):
                skipped_examples.add(example)
                continue
            starts, ends = np.flatnonzero(token_word == first), np.flatnonzero(token_word == last)
            inside = len(starts) and len(ends)
            item["start_positions"] = int(starts[0]) if inside else 0
            item["end_positions"] = int(ends[-1]) if inside else 0
        items.append(item)
    return items, len(skipped_examples) + len(rows) - keep


@dataclass
class TextQACollator:
    pad_token_id: int

    def __call__(self, items):
        batch = pad_tokens(items, self.pad_token_id)
        batch.update(span_labels(items))
        return batch


# ----------------------------------------------------------------------------------------------- pre-training
def joint_embedding_items(rows, frames: PassageFrames, word_ids_of, segments_per_item=64):
    """Step 1 items: each passage's reference word segments in groups, with each word's first word piece."""
    items, seen = [], set()
    for row in rows:
        if row["paragraph_id"] in seen or not row["ref_words"]:
            continue
        seen.add(row["paragraph_id"])
        frames.add(row, "ref")
        word_ids = word_ids_of(row)
        for a in range(0, len(word_ids), segments_per_item):
            b = min(a + segments_per_item, len(word_ids))
            items.append({"paragraph_id": row["paragraph_id"], "kind": "ref", "seg_start": a, "seg_end": b,
                          "audio_word_ids": word_ids[a:b]})
    return items


def pad_word_ids(items, num_segments) -> torch.Tensor:
    word_ids = torch.full((len(items), num_segments), -100, dtype=torch.long)
    for i, item in enumerate(items):
        word_ids[i, : len(item["audio_word_ids"])] = torch.as_tensor(item["audio_word_ids"])
    return word_ids


@dataclass
class JointEmbeddingCollator:
    frames: PassageFrames

    def __call__(self, items):
        features, lengths = self.frames.gather(items)
        return {"audio_features": features, "audio_feature_lengths": lengths,
                "audio_word_ids": pad_word_ids(items, lengths.shape[1])}


@dataclass
class CrossModalMLMCollator:
    """Step 2 batches: text word pieces and audio segments masked at random (the only randomness of training lives
    here, not in the model). A masked text piece becomes [MASK] (80%), a random piece (10%) or stays (10%), as in
    BERT; a masked segment is fed as the [MASK] embedding (`audio_mask`). `labels` hold the original piece at masked
    text positions and the word's first piece at masked audio positions, -100 elsewhere."""

    frames: PassageFrames
    tokenizer: object
    audio_token_id: int
    text_mask_probability: float = 0.15
    audio_mask_probability: float = 0.15

    def __call__(self, items):
        batch = pad_tokens(items, self.tokenizer.pad_token_id)
        batch["audio_features"], batch["audio_feature_lengths"] = self.frames.gather(items)
        word_ids = pad_word_ids(items, batch["audio_feature_lengths"].shape[1])
        input_ids = batch["input_ids"]
        labels = torch.full_like(input_ids, -100)

        special = torch.tensor(self.tokenizer.all_special_ids)
        is_audio = input_ids == self.audio_token_id
        maskable = ~torch.isin(input_ids, special) & ~is_audio & (batch["attention_mask"] == 1)
        text_masked = maskable & (torch.rand(input_ids.shape) < self.text_mask_probability)
        labels[text_masked] = input_ids[text_masked]
        replace = text_masked & (torch.rand(input_ids.shape) < 0.8)
        randomise = text_masked & ~replace & (torch.rand(input_ids.shape) < 0.5)
        input_ids[replace] = self.tokenizer.mask_token_id
        random_ids = torch.randint(len(self.tokenizer), input_ids.shape)
        random_ids[random_ids == self.audio_token_id] = self.tokenizer.mask_token_id  # never fake an audio position
        input_ids[randomise] = random_ids[randomise]

        real = batch["audio_feature_lengths"] > 0
        audio_mask = real & (word_ids >= 0) & (torch.rand(real.shape) < self.audio_mask_probability)
        # The k-th audio position of a row holds its k-th segment: scatter segment labels to positions.
        position_labels = torch.full_like(input_ids, -100)
        segment_labels = torch.where(audio_mask, word_ids, torch.full_like(word_ids, -100))
        position_labels[is_audio] = segment_labels[real]
        labels = torch.where(is_audio, position_labels, labels)
        batch.update(input_ids=input_ids, labels=labels, audio_mask=audio_mask, audio_word_ids=word_ids)
        return batch
