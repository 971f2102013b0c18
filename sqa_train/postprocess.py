"""n-best post-processing in plain numpy: window logits -> per-word start/end log-probabilities -> best span.

Both systems score the same units, the passage's ASR words: SpeechBERT one audio segment per ASR word, the cascade the
word pieces of each ASR word (a word starts at its first piece and ends at its last). A word seen by several windows
keeps its best log-probability; the ensemble adds the two systems' word scores with a weight.
"""

import numpy as np

from speechbert.processing_speechbert import best_spans
from speechbert.text_qa import log_softmax, text_word_scores  # noqa: F401 - text_word_scores is used from here too


def speechbert_word_scores(items, start_logits, end_logits, num_words: dict[int, int]):
    """{example: (start (n,), end (n,))} log-probabilities per segment, from SpeechBERT window logits."""
    scores = {e: (np.full(n, -np.inf), np.full(n, -np.inf)) for e, n in num_words.items()}
    for w, item in enumerate(items):
        length = len(item["input_ids"])
        mask = np.arange(start_logits.shape[1]) < length
        start_lp, end_lp = log_softmax(start_logits[w], mask), log_softmax(end_logits[w], mask)
        positions = item["audio_offset"] + np.arange(item["seg_end"] - item["seg_start"])
        segments = np.arange(item["seg_start"], item["seg_end"])
        start, end = scores[item["example"]]
        np.maximum.at(start, segments, start_lp[positions])
        np.maximum.at(end, segments, end_lp[positions])
    return scores


def predict_spans(word_scores: dict, words: dict, times: dict, max_answer_words: int) -> dict[int, dict]:
    """{example: {"prediction_text", "start_time", "end_time", "word_start", "word_end", "score"}}."""
    predictions = {}
    for example, (start, end) in word_scores.items():
        best = best_spans(start, end, max_answer_words, top_k=1)
        if not best:
            predictions[example] = {"prediction_text": "", "start_time": -1.0, "end_time": -1.0, "word_start": -1,
                                    "word_end": -1, "score": float("-inf")}
            continue
        i, j, score = best[0]
        t = times[example]
        predictions[example] = {
            "prediction_text": " ".join(words[example][i : j + 1]),
            "start_time": float(t[i, 0]) if len(t) else -1.0,
            "end_time": float(t[j, 1]) if len(t) else -1.0,
            "word_start": i, "word_end": j, "score": score,
        }
    return predictions


def ensemble_scores(speechbert: dict, cascade: dict, weight: float) -> dict:
    """weight * SpeechBERT + (1 - weight) * cascade, per word; an example only one system scored keeps its scores."""
    combined = {}
    for example in speechbert.keys() | cascade.keys():
        if example not in cascade:
            combined[example] = speechbert[example]
        elif example not in speechbert:
            combined[example] = cascade[example]
        else:
            combined[example] = tuple(weight * a + (1 - weight) * b
                                      for a, b in zip(speechbert[example], cascade[example]))
    return combined
