"""Spoken QA metrics, overall, per passage-WER bucket and on answers holding ASR errors.

- EM and F1 of the predicted words against every reference answer (SQuAD v1.1 normalisation: lower case, no
  punctuation, no articles, single spaces), best over the references, as the SQuAD script does.
- AOS (audio overlapping score, Li et al. 2018): overlap / union of the predicted and gold time spans.
- Frame F1: precision = overlap / predicted duration, recall = overlap / gold duration, on 10 ms frames.
Time metrics also take the best over the references with a gold span (start_time >= 0).

Buckets group questions by their passage WER: edges (0.1, 0.2, 0.3, 0.4) give [0%, 10%), [10%, 20%), ...,
[40%, inf). A passage with an unknown WER (-1) only counts overall.
"""

import re
import string
from collections import Counter

import datasets
import evaluate
import numpy as np

_CITATION = """\
@inproceedings{li2018spokensquad,
  title={Spoken SQuAD: A Study of Mitigating the Impact of Speech Recognition Errors on Listening Comprehension},
  author={Li, Chia-Hsuan and Wu, Szu-Lin and Liu, Chi-Liang and Lee, Hung-yi},
  booktitle={Proc. Interspeech}, year={2018}
}
"""
FRAME_S = 0.01
DEFAULT_EDGES = (0.1, 0.2, 0.3, 0.4)


def normalize_answer(text: str) -> str:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    common = sum((Counter(pred) & Counter(ref)).values())
    if not pred or not ref:
        return float(pred == ref)
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def _frames(start: float, end: float) -> tuple[int, int]:
    return int(round(start / FRAME_S)), int(round(end / FRAME_S))


def aos(pred_start: float, pred_end: float, gold_start: float, gold_end: float) -> float:
    (ps, pe), (gs, ge) = _frames(pred_start, pred_end), _frames(gold_start, gold_end)
    overlap = max(0, min(pe, ge) - max(ps, gs))
    union = max(pe, ge) - min(ps, gs)
    return overlap / union if union > 0 else 0.0


def frame_f1(pred_start: float, pred_end: float, gold_start: float, gold_end: float) -> float:
    (ps, pe), (gs, ge) = _frames(pred_start, pred_end), _frames(gold_start, gold_end)
    overlap = max(0, min(pe, ge) - max(ps, gs))
    if overlap == 0:
        return 0.0
    precision, recall = overlap / (pe - ps), overlap / (ge - gs)
    return 2 * precision * recall / (precision + recall)


def bucket_name(wer: float, edges=DEFAULT_EDGES) -> str | None:
    if wer < 0:
        return None
    bounds = [0.0, *edges, float("inf")]
    for low, high in zip(bounds, bounds[1:]):
        if low <= wer < high:
            return f"[{100 * low:.0f}%, {'inf' if high == float('inf') else f'{100 * high:.0f}%'})"
    return None


def score_question(prediction: dict, reference: dict) -> dict:
    texts = reference["answers"]["text"]
    scores = {
        "exact_match": max(exact_match(prediction["prediction_text"], t) for t in texts),
        "f1": max(token_f1(prediction["prediction_text"], t) for t in texts),
    }
    spans = [(s, e) for s, e in zip(reference["answers"]["start_time"], reference["answers"]["end_time"]) if s >= 0]
    if spans and prediction["start_time"] >= 0:
        scores["aos"] = max(aos(prediction["start_time"], prediction["end_time"], s, e) for s, e in spans)
        scores["frame_f1"] = max(frame_f1(prediction["start_time"], prediction["end_time"], s, e) for s, e in spans)
    elif spans:
        scores["aos"] = scores["frame_f1"] = 0.0
    return scores


def aggregate(rows: list[dict]) -> dict:
    result = {"count": len(rows)}
    for key in ("exact_match", "f1", "aos", "frame_f1"):
        values = [r[key] for r in rows if key in r]
        result[key] = 100 * float(np.mean(values)) if values else None
    return result


def _repeated(ids) -> list:
    return [i for i, n in Counter(ids).items() if n > 1]


def check_wer_bucket_edges(wer_bucket_edges) -> None:
    """Bucket edges out of order named a bucket [30%, 10%) and left the questions between them in none; a repeated
    edge made an empty bucket; an infinite one a bucket past every WER. `run_sqa.py` checks its option with this."""
    edges = list(wer_bucket_edges)
    if any(isinstance(e, bool) or not isinstance(e, (int, float)) or not 0 < e < float("inf") for e in edges) \
            or edges != sorted(set(edges)):
        raise ValueError(f"wer_bucket_edges must be increasing (each edge once), positive and finite WERs (e.g. "
                         f"[0.1, 0.2, 0.3, 0.4]), got {edges}")


def check_inputs(predictions, references, wer_bucket_edges) -> None:
    """Inputs that would give numbers without an error, but wrong ones: an id given twice (the last prediction won,
    a reference counted twice), bucket edges out of order (a bucket named [30%, 10%)), a reference without answer text
    (max() of nothing)."""
    check_wer_bucket_edges(wer_bucket_edges)
    for name, rows in (("predictions", predictions), ("references", references)):
        repeated = _repeated(r["id"] for r in rows)
        if repeated:
            raise ValueError(f"{len(repeated)} ids appear more than once in {name}, e.g. {repeated[:3]}: one row per "
                             "question")
    empty = [r["id"] for r in references if not len(r["answers"]["text"])]
    if empty:
        raise ValueError(f"{len(empty)} references have no answer text, e.g. {empty[:3]}")


def compute(predictions, references, wer_bucket_edges=DEFAULT_EDGES) -> dict:
    check_inputs(predictions, references, wer_bucket_edges)
    by_id = {p["id"]: p for p in predictions}
    missing = [r["id"] for r in references if r["id"] not in by_id]
    if missing:
        raise ValueError(f"{len(missing)} references have no prediction, e.g. {missing[:3]}")
    scored = []
    for reference in references:
        row = score_question(by_id[reference["id"]], reference)
        row["bucket"] = bucket_name(reference["wer"], wer_bucket_edges)
        row["has_asr_error"] = reference["has_asr_error"]
        scored.append(row)
    buckets = {}
    for name in [bucket_name(x, wer_bucket_edges) for x in (0.0, *wer_bucket_edges)]:
        buckets[name] = aggregate([r for r in scored if r["bucket"] == name])
    return {
        "overall": aggregate(scored),
        "wer_buckets": buckets,
        "answers_with_asr_errors": aggregate([r for r in scored if r["has_asr_error"]]),
        "answers_without_asr_errors": aggregate([r for r in scored if not r["has_asr_error"]]),
        "wer_bucket_edges": list(wer_bucket_edges),
    }


class SpokenSquadQA(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__,
            citation=_CITATION,
            inputs_description="predictions: id, prediction_text, start_time, end_time (-1 when no span); "
            "references: id, answers (text, start_time, end_time), wer (-1 unknown), has_asr_error",
            features=datasets.Features({
                "predictions": {"id": datasets.Value("string"), "prediction_text": datasets.Value("string"),
                                "start_time": datasets.Value("float64"), "end_time": datasets.Value("float64")},
                "references": {
                    "id": datasets.Value("string"),
                    "answers": {"text": datasets.Sequence(datasets.Value("string")),
                                "start_time": datasets.Sequence(datasets.Value("float64")),
                                "end_time": datasets.Sequence(datasets.Value("float64"))},
                    "wer": datasets.Value("float64"),
                    "has_asr_error": datasets.Value("bool"),
                },
            }),
        )

    def _compute(self, predictions, references, wer_bucket_edges=DEFAULT_EDGES):
        return compute(predictions, references, tuple(wer_bucket_edges))
