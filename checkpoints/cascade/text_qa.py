"""Text question answering over a passage's words, as the cascade reads a transcript: windows cut as `run_qa.py` cuts
them (question first, the words truncated into overlapping windows), window logits turned into per-word start / end
log-probabilities (a word starts at its first piece and ends at its last; a word seen by several windows keeps its
best). `run_sqa.py`'s cascade and text upper bound, `sqa_train.cascade` and the cascade's pipeline
(`pipeline_cascade.py`) all use these, so a cascade model scores alike wherever it runs."""

import numpy as np
import torch


def log_softmax(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    logits = np.where(mask, logits.astype(np.float64), -np.inf)
    top = logits.max()
    return logits - top - np.log(np.exp(logits - top).sum())


def text_windows(tokenizer, questions, passages, max_length: int, stride: int) -> list[dict]:
    """Window items of each (question, passage words) pair: `input_ids`, `token_type_ids`, `example` (the pair's
    index) and `token_word` (the passage word of each token, -1 for the question and special tokens). Pairs whose
    passage has no words give no window."""
    keep = [i for i, words in enumerate(passages) if len(words)]
    if not keep:
        return []
    encoded = tokenizer(
        [questions[i].split() for i in keep], [list(passages[i]) for i in keep],
        is_split_into_words=True, truncation="only_second", max_length=max_length, stride=stride,
        return_overflowing_tokens=True, padding=False,
    )
    items = []
    for feature, position in enumerate(encoded["overflow_to_sample_mapping"]):
        word_ids, sequence_ids = encoded.word_ids(feature), encoded.sequence_ids(feature)
        token_word = np.array([w if s == 1 else -1 for w, s in zip(word_ids, sequence_ids)], np.int64)
        items.append({"input_ids": encoded["input_ids"][feature], "token_type_ids": encoded["token_type_ids"][feature],
                      "example": keep[position], "token_word": token_word})
    return items


def pad_tokens(items, pad_token_id) -> dict[str, torch.Tensor]:
    """A batch of window items padded to the longest: `input_ids`, `token_type_ids`, `attention_mask`."""
    width = max(len(item["input_ids"]) for item in items)
    input_ids = torch.full((len(items), width), pad_token_id, dtype=torch.long)
    token_type_ids = torch.zeros((len(items), width), dtype=torch.long)
    attention_mask = torch.zeros((len(items), width), dtype=torch.long)
    for i, item in enumerate(items):
        n = len(item["input_ids"])
        input_ids[i, :n] = torch.as_tensor(item["input_ids"])
        token_type_ids[i, :n] = torch.as_tensor(item["token_type_ids"])
        attention_mask[i, :n] = 1
    return {"input_ids": input_ids, "token_type_ids": token_type_ids, "attention_mask": attention_mask}


def text_word_scores(items, start_logits, end_logits, num_words: dict[int, int]):
    """{example: (start (n,), end (n,))} per word, from text QA window logits (first / last word piece)."""
    scores = {e: (np.full(n, -np.inf), np.full(n, -np.inf)) for e, n in num_words.items()}
    for w, item in enumerate(items):
        token_word = item["token_word"]
        mask = np.arange(start_logits.shape[1]) < len(token_word)
        start_lp, end_lp = log_softmax(start_logits[w], mask), log_softmax(end_logits[w], mask)
        positions = np.flatnonzero(token_word >= 0)
        words = token_word[positions]
        first = np.r_[True, words[1:] != words[:-1]]  # first piece of each word in this window
        last = np.r_[words[1:] != words[:-1], True]
        start, end = scores[item["example"]]
        np.maximum.at(start, words[first], start_lp[positions[first]])
        np.maximum.at(end, words[last], end_lp[positions[last]])
    return scores
