"""SpeechBERT processor: a question's word pieces + a spoken passage's word segments -> model inputs, and back.

Layout of every window: `[CLS] question [SEP] a_1 ... a_k [SEP]`, token types 0 then 1, one audio position
(`audio_token`) per word segment. A passage with more segments than fit in `max_length` is cut into windows that
overlap by `stride` segments, as `run_qa.py` does with `doc_stride`; `overflow_to_sample_mapping` says which example a
window comes from and `segment_index` which segment each position holds (-1 for text and padding).
"""

import warnings

import numpy as np
from transformers import BatchFeature
from transformers.processing_utils import ProcessorMixin
from transformers.tokenization_utils_base import VERY_LARGE_INTEGER


class SpeechBertProcessor(ProcessorMixin):
    r"""
    Args:
        feature_extractor (`SpeechBertFeatureExtractor`): audio + word segments -> per-segment frames.
        tokenizer (a BERT tokenizer): the question's word pieces.
        audio_token (`str`, defaults to `"[unused0]"`): the vocabulary token whose id marks audio positions; it must
            match the model's `config.audio_token_id`.
    """

    def __init__(self, feature_extractor, tokenizer, audio_token="[unused0]", **kwargs):
        self.audio_token = audio_token
        super().__init__(feature_extractor, tokenizer, **kwargs)
        self.audio_token_id = self.tokenizer.convert_tokens_to_ids(audio_token)
        if self.audio_token_id is None or self.audio_token_id == self.tokenizer.unk_token_id:
            raise ValueError(f"audio_token {audio_token!r} is not in the tokenizer's vocabulary")

    @classmethod
    def for_config(cls, config, tokenizer, **kwargs) -> "SpeechBertProcessor":
        """The processor for a SpeechBERT config: a feature extractor with the config's front end, and `tokenizer`."""
        from .feature_extraction_speechbert import SpeechBertFeatureExtractor

        return cls(SpeechBertFeatureExtractor(**config.feature_extractor_kwargs()), tokenizer, **kwargs)

    # ------------------------------------------------------------------ encoding
    def __call__(
        self,
        question=None,
        audio=None,
        word_segments=None,
        sampling_rate=None,
        words=None,
        answer_times=None,
        max_length=384,
        stride=128,
        max_question_length=64,
        padding="longest",
        return_tensors=None,
        **kwargs,
    ) -> BatchFeature:
        r"""
        Args:
            question (`str` or `list[str]`): the question(s), one per passage.
            audio: one mono 16 kHz waveform or a list of them.
            word_segments: (start, end) seconds of each spoken word of the passage, or a list of such lists.
            sampling_rate (`int`): rate of `audio`; must match the feature extractor's.
            words (*optional*): the passage words, one per segment (or a list of such lists). Checked against the
                segments and turned into `audio_word_ids` (first word piece of each word, per window segment), the
                target of the alignment and audio MLM losses.
            answer_times (*optional*): `(start_s, end_s)` of the answer (or a list, one per example). Adds
                `start_positions` / `end_positions`: the audio positions of the first and last answer segment (the
                segments whose midpoint lies in the span or, for an answer shorter than a word, the one it overlaps
                most), or 0 (`[CLS]`) in a window that does not hold the whole answer, as in `run_qa.py`.
            max_length (`int`): tokens per window, special tokens included; at most the tokenizer's
                `model_max_length` where it has one.
            stride (`int`): segments shared by consecutive windows of one passage.
            max_question_length (`int`): question word pieces kept (the rest is cut, with a warning).
            padding (`"longest"` or `"max_length"`): pad windows to the longest one or to `max_length`.

        Returns:
            `BatchFeature` with `input_ids`, `token_type_ids`, `attention_mask`, `audio_features`,
            `audio_feature_lengths`, `segment_index`, `segment_times` (start/end seconds per position, -1 elsewhere),
            `overflow_to_sample_mapping`, and `audio_word_ids` / `start_positions` / `end_positions` when asked for.
        """
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        if padding not in ("longest", "max_length"):
            raise ValueError(f"padding must be 'longest' or 'max_length', got {padding!r}")
        data, windows, extracted = self.prepare(
            question, audio, word_segments, sampling_rate, words=words, answer_times=answer_times,
            max_length=max_length, stride=stride, max_question_length=max_question_length,
            width=max_length if padding == "max_length" else None)
        data["audio_features"], data["audio_feature_lengths"] = self.gather_audio(windows, extracted)
        return BatchFeature(data, tensor_type=return_tensors)

    def prepare(self, question, audio, word_segments, sampling_rate=None, words=None, answer_times=None,
                max_length=384, stride=128, max_question_length=64, width=None, frame_features=None):
        """Everything `__call__` does but padding the audio features of every window: returns `(data, windows,
        extracted)`, the token-level arrays of `__call__`'s output, the `(example, first, end)` segment range of
        each window and each example's `(features, lengths)` of all its segments. `gather_audio` pads the features
        of any subset of the windows, so a caller can run the windows in batches with memory bounded by the batch,
        not by the number of windows. `frame_features`: each passage's `feature_extractor.frame_features` (one per
        example, like `audio`), where the caller has computed them already (the pipeline's word segmenter has)."""
        if question is None or audio is None or word_segments is None:
            raise ValueError("question, audio and word_segments are all required")
        for name, value, low in (("max_length", max_length, 4), ("stride", stride, 0),
                                 ("max_question_length", max_question_length, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        # A tokenizer saved without a limit leaves the check to the pipeline, which knows the model's positions.
        limit = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(limit, int) and limit < VERY_LARGE_INTEGER and max_length > limit:
            raise ValueError(f"max_length={max_length} is more than the tokenizer's model_max_length={limit} "
                             "(the positions the model was trained with)")
        batched = not isinstance(question, str)
        if batched and not isinstance(question, (list, tuple)):
            raise ValueError(f"question must be a string or a list of strings, got {type(question).__name__}")
        questions = list(question) if batched else [question]
        audios = list(audio) if batched else [audio]
        segments = list(word_segments) if batched else [word_segments]
        word_lists = (list(words) if batched else [words]) if words is not None else None
        answers = (list(answer_times) if batched else [answer_times]) if answer_times is not None else None
        given_frames = (list(frame_features) if batched else [frame_features]) if frame_features is not None else None
        for name, values in (("audio", audios), ("word_segments", segments), ("words", word_lists),
                             ("answer_times", answers), ("frame_features", given_frames)):
            if values is not None and len(values) != len(questions):
                raise ValueError(f"got {len(questions)} questions but {len(values)} entries in {name}")
        for i, q in enumerate(questions):
            if not isinstance(q, str):
                raise ValueError(f"question {i} must be a string, got {type(q).__name__} {q!r}")
            if not q.strip():
                raise ValueError(f"question {i} is empty: expected a non-empty string, got {q!r}")
        if word_lists is not None:
            for i, (w, s) in enumerate(zip(word_lists, segments)):
                check_words(w, i)
                if len(w) != len(s):
                    raise ValueError(f"example {i} has {len(s)} word segments but {len(w)} words: one word per segment")

        question_ids = self.tokenizer(questions, add_special_tokens=False)["input_ids"]
        for i, ids in enumerate(question_ids):
            if len(ids) > max_question_length:  # cut as run_qa.py cuts long questions, but never silently
                warnings.warn(f"question {i} has {len(ids)} word pieces: only its first max_question_length="
                              f"{max_question_length} are read (raise max_question_length to keep more)", stacklevel=2)
        question_ids = [ids[:max_question_length] for ids in question_ids]
        self.feature_extractor.check_sampling_rate(sampling_rate)
        # Several questions about one passage (the same audio and segment objects) share one extraction.
        cache, extracted, mono = {}, [], []
        for i, (a, s) in enumerate(zip(audios, segments)):
            key = (id(a), id(s))
            if key not in cache:
                waveform = self.feature_extractor.to_mono(a)
                extract = self.feature_extractor.extract_checked
                # Without frames, called as before they were an argument (a checkpoint's own extractor may predate it).
                cache[key] = waveform, (extract(waveform, s) if given_frames is None else
                                        extract(waveform, s, given_frames[i]))
            mono.append(cache[key][0])
            extracted.append(cache[key][1])
        audios = mono
        times = [np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in segments]
        answer_segments = None
        if answers is not None:
            answer_segments = [self.answer_segments(t, a, x.size / sampling_rate) for t, a, x in
                               zip(times, answers, audios)]
        word_ids = None
        if word_lists is not None:
            word_ids = [self.first_word_pieces(w) for w in word_lists]

        windows = self.plan_windows([len(q) for q in question_ids], [f.shape[0] for f, _ in extracted], max_length,
                                    stride)
        data = self.encode_windows(windows, question_ids, times, word_ids, answer_segments, width)
        return data, windows, extracted

    def gather_audio(self, windows, extracted, start=0, stop=None) -> tuple[np.ndarray, np.ndarray]:
        """(W, S, T, F) features and (W, S) frame counts of windows `start:stop`, from `prepare`'s output."""
        chosen = windows[start:stop]
        return self.feature_extractor.pad_segments([extracted[e][0][a:b] for e, a, b in chosen],
                                                   [extracted[e][1][a:b] for e, a, b in chosen])

    @staticmethod
    def plan_windows(question_lengths, num_segments, max_length, stride) -> list[tuple[int, int, int]]:
        """(example, first segment, end segment) of every window: as many segments as `max_length` leaves after
        the question and 3 special tokens, consecutive windows sharing `stride` segments."""
        windows = []
        for example, (q_length, count) in enumerate(zip(question_lengths, num_segments)):
            capacity = max_length - q_length - 3
            if capacity <= stride:
                raise ValueError(
                    f"max_length={max_length} leaves {capacity} audio positions after a {q_length}-piece question "
                    f"and 3 special tokens; it must exceed stride={stride}"
                )
            start = 0
            while True:
                end = min(start + capacity, count)
                windows.append((example, start, end))
                if end == count:
                    break
                start = end - stride
        return windows

    def encode_windows(self, windows, question_ids, times, word_ids=None, answer_segments=None, width=None) -> dict:
        """Every array of the windows but the audio features (which a training collator may gather itself)."""
        tok = self.tokenizer
        lengths = [len(question_ids[e]) + 3 + (b - a) for e, a, b in windows]
        width = width or max(lengths)
        n = len(windows)
        input_ids = np.full((n, width), tok.pad_token_id, np.int64)
        token_type_ids = np.zeros((n, width), np.int64)
        attention_mask = np.zeros((n, width), np.int64)
        segment_index = np.full((n, width), -1, np.int64)
        segment_times = np.full((n, width, 2), -1.0, np.float32)
        audio_word_ids = np.full((n, max(b - a for _, a, b in windows)), -100, np.int64)
        starts, ends = np.zeros(n, np.int64), np.zeros(n, np.int64)
        for w, (example, a, b) in enumerate(windows):
            q = question_ids[example]
            audio_start = len(q) + 2  # after [CLS] question [SEP]
            row = [tok.cls_token_id, *q, tok.sep_token_id] + [self.audio_token_id] * (b - a) + [tok.sep_token_id]
            input_ids[w, : len(row)] = row
            attention_mask[w, : len(row)] = 1
            token_type_ids[w, audio_start : len(row)] = 1
            segment_index[w, audio_start : audio_start + b - a] = np.arange(a, b)
            segment_times[w, audio_start : audio_start + b - a] = times[example][a:b]
            if word_ids is not None:
                audio_word_ids[w, : b - a] = word_ids[example][a:b]
            if answer_segments is not None:
                first, last = answer_segments[example]
                if a <= first and last < b:
                    starts[w], ends[w] = audio_start + first - a, audio_start + last - a
        data = {
            "input_ids": input_ids,
            "token_type_ids": token_type_ids,
            "attention_mask": attention_mask,
            "segment_index": segment_index,
            "segment_times": segment_times,
            "overflow_to_sample_mapping": np.array([e for e, _, _ in windows], np.int64),
        }
        if word_ids is not None:
            data["audio_word_ids"] = audio_word_ids
        if answer_segments is not None:
            data["start_positions"], data["end_positions"] = starts, ends
        return data

    def first_word_pieces(self, words) -> np.ndarray:
        """First word piece id of each word (the audio MLM and alignment target)."""
        return first_pieces(self.tokenizer, words)

    @staticmethod
    def answer_segments(times: np.ndarray, answer, duration: float) -> tuple[int, int]:
        """First and last segment of an answer span in seconds: the segments whose midpoint lies inside it, or, for
        an answer shorter than any word, the segment that overlaps it most."""
        answer = np.asarray(answer, dtype=np.float64).reshape(-1)
        if answer.shape != (2,) or not np.isfinite(answer).all():
            raise ValueError(f"answer_times must be one (start_s, end_s) pair, got {answer.tolist()}")
        start, end = answer
        if end <= start:
            raise ValueError(f"answer_times ({start:.3f}, {end:.3f}) s is reversed or empty")
        if start < 0 or end > duration + 0.01:
            raise ValueError(f"answer_times ({start:.3f}, {end:.3f}) s lie outside the audio (0, {duration:.3f}) s")
        middle = times.mean(1)
        inside = np.flatnonzero((middle >= start) & (middle <= end))
        if inside.size:
            return int(inside[0]), int(inside[-1])
        overlap = np.minimum(times[:, 1], end) - np.maximum(times[:, 0], start)
        best = int(np.argmax(overlap))
        if overlap[best] <= 0:
            raise ValueError(f"answer_times ({start:.3f}, {end:.3f}) s overlap no word segment")
        return best, best

    # ------------------------------------------------------------------ decoding
    def decode_answer(self, inputs, outputs, words=None, max_answer_segments=30, top_k=1):
        r"""Best answer span of every example, over all its windows, mapped back to segments, times and words.

        A span starts and ends on audio positions of one window, with `end >= start` and at most
        `max_answer_segments` segments. Its `score` is the window's start probability times its end probability
        (softmax over the window's positions); the same span seen in two overlapping windows keeps its best score.

        Args:
            inputs: the processor's output (its `segment_index`, `segment_times`, `overflow_to_sample_mapping`).
            outputs: the model's output (`start_logits`, `end_logits`).
            words (*optional*): the passage words (a list, or one list per example) for the answer `text`.
            top_k (`int`): answers per example.

        Returns:
            For each example a dict `{"text", "start_time", "end_time", "segment_start", "segment_end", "score"}`
            (a list of `top_k` such dicts when `top_k > 1`). With one example, that entry itself; else a list.
        """
        for name, value in (("max_answer_segments", max_answer_segments), ("top_k", top_k)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be >= 1 and an integer, got {value!r}")
        segment_index = _numpy(inputs["segment_index"])
        segment_times = _numpy(inputs["segment_times"])
        mask = _numpy(inputs["attention_mask"]).astype(bool)
        examples = _numpy(inputs["overflow_to_sample_mapping"])
        start_logits = _numpy(outputs["start_logits"]).astype(np.float64)
        end_logits = _numpy(outputs["end_logits"]).astype(np.float64)
        bad = int((~np.isfinite(start_logits[mask])).sum() + (~np.isfinite(end_logits[mask])).sum())
        if bad:
            raise ValueError(f"the model produced {bad} non-finite (NaN or infinite) start/end logits at attended "
                             "positions: its weights or inputs are broken, no answer can be decoded")
        num_examples = int(examples.max()) + 1
        if words is not None:
            word_lists = [words] if num_examples == 1 and (not words or isinstance(words[0], str)) else list(words)
            if len(word_lists) != num_examples:
                raise ValueError(f"got words for {len(word_lists)} examples, the inputs hold {num_examples}")
            for example, w in enumerate(word_lists):
                count = int(segment_index[examples == example].max()) + 1
                if len(w) != count:
                    raise ValueError(f"example {example} has {count} word segments but {len(w)} words")
        candidates = [dict() for _ in range(num_examples)]  # (first, last) segment -> (score, start s, end s)
        for w in range(len(examples)):
            audio = np.flatnonzero(segment_index[w] >= 0)  # contiguous audio positions of this window
            start_p = _softmax(start_logits[w], mask[w])[audio]
            end_p = _softmax(end_logits[w], mask[w])[audio]
            for i, j, score in best_spans(start_p, end_p, max_answer_segments, top_k, combine=np.multiply):
                key = (int(segment_index[w, audio[i]]), int(segment_index[w, audio[j]]))
                found = candidates[examples[w]]
                if key not in found or found[key][0] < score:
                    # Word times are frame-quantised: milliseconds are all they carry.
                    found[key] = (score, round(float(segment_times[w, audio[i], 0]), 3),
                                  round(float(segment_times[w, audio[j], 1]), 3))
        results = []
        for example, found in enumerate(candidates):
            ranked = sorted(found.items(), key=lambda item: -item[1][0])[:top_k]
            answers = [
                {
                    "text": " ".join(word_lists[example][first : last + 1]) if words is not None else None,
                    "start_time": start_s,
                    "end_time": end_s,
                    "segment_start": first,
                    "segment_end": last,
                    "score": score,
                }
                for (first, last), (score, start_s, end_s) in ranked
            ]
            results.append(answers if top_k > 1 else answers[0])
        return results[0] if num_examples == 1 else results


def word_initial_ids(tokenizer) -> np.ndarray:
    """Vocabulary ids a word can start with: not `##` continuations, not special, `[unused*]` or `[PAD]`-like. Step 1
    pulls each word's code towards its first piece's embedding, so these are what a code can be read back as."""
    special = set(tokenizer.all_special_ids)
    ids = []
    for token, i in tokenizer.get_vocab().items():
        if i in special or token.startswith("##") or (token.startswith("[") and token.endswith("]")):
            continue
        ids.append(i)
    return np.array(sorted(ids), np.int64)


def first_pieces(tokenizer, words) -> np.ndarray:
    """The first word piece id of each word ([UNK] for a word with none): the piece step 1 pulls a word's code
    towards, and the one a code is read back as."""
    pieces = tokenizer(list(words), add_special_tokens=False)["input_ids"]
    return np.array([p[0] if p else tokenizer.unk_token_id for p in pieces], np.int64)


def check_words(words, example=0):
    """A passage's words must be a list of strings (one per segment): a None or a number would be joined into an
    answer silently."""
    if isinstance(words, (str, bytes)) or not hasattr(words, "__len__"):
        raise ValueError(f"words of example {example} must be a list of strings, got {type(words).__name__}")
    for i, word in enumerate(words):
        if not isinstance(word, str):
            raise ValueError(f"words[{i}] of example {example} is {word!r} ({type(word).__name__}): expected a string "
                             "per word segment")


def best_spans(start_scores, end_scores, max_length, top_k=1, combine=np.add) -> list[tuple[int, int, float]]:
    """The `top_k` spans (i, j, score) with i <= j < i + max_length, best first, scored `combine(start[i], end[j])`
    (add log-probabilities, multiply probabilities)."""
    start_scores, end_scores = np.asarray(start_scores, np.float64), np.asarray(end_scores, np.float64)
    n = len(start_scores)
    if n == 0:
        return []
    scores = combine(start_scores[:, None], end_scores[None, :])  # (n, n): start i, end j
    offset = np.arange(n)
    span = offset[None, :] - offset[:, None]
    scores[(span < 0) | (span >= max_length)] = -np.inf
    best = np.argsort(scores, axis=None, kind="stable")[::-1][:top_k]
    return [(int(f) // n, int(f) % n, float(scores.flat[f])) for f in best if np.isfinite(scores.flat[f])]


def _numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu() if x.is_floating_point() else x.detach().cpu()
    return np.asarray(x)


def _softmax(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    logits = np.where(mask, logits, -np.inf)
    e = np.exp(logits - logits.max())
    return e / e.sum()


SpeechBertProcessor.register_for_auto_class("AutoProcessor")

__all__ = ["SpeechBertProcessor"]
