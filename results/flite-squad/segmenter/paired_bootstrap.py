"""How sure is a QA gap between two systems? (issue 13, 2026-12-06) A paired bootstrap over the questions of one split.

Each system is `PREDICTIONS_JSON:SYSTEM` (a `run_sqa.py` predictions file and the system's key in it). Every question
both systems answered is scored by the metric module's own `score_question` (word F1 and AOS against the corpus's
spoken answers); the questions are resampled with replacement (the same draw for both systems) and the gap of the
means (A - B) recorded. Prints both means, the gap, its 95% percentile interval and the share of resamples in which
B is within `--within` points of A (the goal of issue 13: the system without ASR within 2 F1 of ASR segments).
Questions of one passage are not independent; `--by passage` resamples whole passages instead. Run from the repository
root:

    .venv/bin/python results/flite-squad/segmenter/paired_bootstrap.py \
        outputs/benchmark/sqa/predictions_test.json:speechbert \
        outputs/benchmark/no_asr_ft/predictions_test.json:speechbert_segmenter --split test
"""

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from metrics.spoken_squad_qa.spoken_squad_qa import score_question  # noqa: E402
from sqa_train.data import load_corpus  # noqa: E402
from sqa_train.evaluation import references  # noqa: E402


def system_predictions(spec: str) -> dict:
    path, _, system = spec.rpartition(":")
    if not path or not system:
        raise SystemExit(f"expected PREDICTIONS_JSON:SYSTEM, got {spec!r}")
    predictions = json.loads(Path(path).read_text())
    if system not in predictions:
        raise SystemExit(f"{path} has no system {system!r} (it has {sorted(predictions)})")
    return predictions[system]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", help="PREDICTIONS_JSON:SYSTEM, the reference system (A)")
    parser.add_argument("b", help="PREDICTIONS_JSON:SYSTEM, the system compared with it (B)")
    parser.add_argument("--dataset", default="outputs/benchmark/dataset")
    parser.add_argument("--split", default="test")
    parser.add_argument("--metric", default="f1", choices=["f1", "exact_match", "aos", "frame_f1"])
    parser.add_argument("--within", type=float, default=2.0)
    parser.add_argument("--by", default="question", choices=["question", "passage"])
    parser.add_argument("--resamples", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    a, b = system_predictions(args.a), system_predictions(args.b)
    rows = load_corpus(args.dataset)[args.split]
    refs = {r["id"]: r for r in references(rows)}
    passage = {row["id"]: row["paragraph_id"] for row in rows}
    scored = {i: (score_question(a[i], refs[i]), score_question(b[i], refs[i])) for i in set(a) & set(b) & set(refs)}
    # As the metric module's `aggregate`: a question without the metric (AOS where the reference has no time span)
    # is left out, not counted as 0.
    ids = sorted(i for i, (x, y) in scored.items() if args.metric in x and args.metric in y)
    if not ids:
        raise SystemExit(f"the two systems share no question of the {args.split} split with {args.metric}")
    score_a = np.array([100 * scored[i][0][args.metric] for i in ids])
    score_b = np.array([100 * scored[i][1][args.metric] for i in ids])
    if args.by == "passage":
        groups = defaultdict(list)
        for k, i in enumerate(ids):
            groups[passage[i]].append(k)
        units = [np.array(g) for g in groups.values()]
    else:
        units = [np.array([k]) for k in range(len(ids))]
    rng = np.random.default_rng(args.seed)
    gaps = np.empty(args.resamples)
    for r in range(args.resamples):
        chosen = np.concatenate([units[u] for u in rng.integers(0, len(units), len(units))])
        gaps[r] = score_a[chosen].mean() - score_b[chosen].mean()
    low, high = np.percentile(gaps, [2.5, 97.5])
    print(f"{args.split}, {len(ids)} questions ({len(units)} {args.by} units), {args.metric}: "
          f"A {score_a.mean():.2f}, B {score_b.mean():.2f}, A - B {score_a.mean() - score_b.mean():.2f}, "
          f"95% interval [{low:.2f}, {high:.2f}], B within {args.within:g} of A in "
          f"{100 * np.mean(gaps <= args.within):.1f}% of {args.resamples} resamples")


if __name__ == "__main__":
    main()
