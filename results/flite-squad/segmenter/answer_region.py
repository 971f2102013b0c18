"""Where the segmenter loses QA points (issue 13): test questions split by how well the word segmenter segments the
gold answer's time span, with the F1 of the same SpeechBERT at ASR segments and at the segmenter's segments.

An answer region is "clean" when every reference word start inside the gold span, and the span's end, has a
segmenter boundary within --tolerance seconds and no other segmenter start falls inside the span; "merged" when some
reference word start there has no segmenter boundary near it; "split" when it is not merged but the segmenter starts
extra words inside the span. Run from the repository root:

    python results/flite-squad/segmenter/answer_region.py --model outputs/segmenter/qa_bench_conv96x6_begin3/model \
        --segmenter_predictions outputs/segmenter/qa_bench_conv96x6_begin3/predictions_test.json \
        --asr_predictions outputs/benchmark/sqa/predictions_test.json
"""

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from metrics.spoken_squad_qa.spoken_squad_qa import token_f1  # noqa: E402
from speechbert import SpeechBertFeatureExtractor, SpeechBertForQuestionAnswering  # noqa: E402
from speechbert.pipeline_speechbert import load_audio  # noqa: E402
from sqa_train.data import load_corpus  # noqa: E402
from sqa_train.evaluation import spoken_answers  # noqa: E402


def near(times, t, tolerance):
    return len(times) > 0 and np.min(np.abs(times - t)) <= tolerance


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--segmenter_predictions", required=True)
    parser.add_argument("--asr_predictions", required=True)
    parser.add_argument("--dataset", default="outputs/benchmark/dataset")
    parser.add_argument("--split", default="test")
    parser.add_argument("--tolerance", type=float, default=0.05)
    parser.add_argument("--threshold", type=float, default=None,
                        help="decode the segments at this P(word start) threshold (default the checkpoint's), as the "
                             "predictions were made (run_sqa.py --config_overrides segmenter_threshold=T)")
    parser.add_argument("--output", default=None, help="write the table and counts as JSON here too")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seg_pred = json.loads(Path(args.segmenter_predictions).read_text())["speechbert_segmenter"]
    asr_pred = json.loads(Path(args.asr_predictions).read_text())["speechbert"]
    model = SpeechBertForQuestionAnswering.from_pretrained(args.model).eval()
    if args.threshold is not None:
        model.config.segmenter_threshold = args.threshold
    extractor = SpeechBertFeatureExtractor.from_pretrained(args.model)
    rows = load_corpus(args.dataset)[args.split]
    segments = {}
    groups = defaultdict(list)
    for row in rows:
        if row["id"] not in seg_pred or row["id"] not in asr_pred:
            continue
        key = row["paragraph_id"]
        if key not in segments:
            audio = load_audio(row["audio_paths"][0])
            segments[key] = np.asarray(model.bert.segment_words(extractor.frame_features(audio))[0], np.float64)
        seg = segments[key]
        start, end = row["answers"]["start_time"][0], row["answers"]["end_time"][0]
        ref_starts = np.asarray(row["ref_starts"])
        inside = ref_starts[(ref_starts >= start - 1e-6) & (ref_starts < end - 1e-6)]
        bounds = np.concatenate([seg[:, 0], seg[:, 1]]) if len(seg) else np.zeros(0)
        merged = not all(near(bounds, t, args.tolerance) for t in inside) or not near(bounds, end, args.tolerance)
        seg_inside = seg[:, 0][(seg[:, 0] > start + args.tolerance) & (seg[:, 0] < end - args.tolerance)] \
            if len(seg) else np.zeros(0)
        extra = sum(not near(inside, t, args.tolerance) for t in seg_inside)
        kind = "merged" if merged else "split" if extra else "clean"
        gold = spoken_answers(row)  # the answers as spoken, as run_sqa.py scores them
        f1 = lambda p: max(token_f1(p["prediction_text"], g) for g in gold)  # noqa: E731
        groups[kind].append((f1(asr_pred[row["id"]]), f1(seg_pred[row["id"]])))
    total = sum(len(v) for v in groups.values())
    lines = [f"{args.split}: {total} questions, tolerance {1000 * args.tolerance:.0f} ms, model {args.model}, "
             f"threshold {model.config.segmenter_threshold}", "",
             "| answer region | questions | F1 at ASR segments | F1 at segmenter segments | gap | share of the total gap |",
             "|---|---|---|---|---|---|"]
    gap_total = sum(a - s for v in groups.values() for a, s in v)
    summary = {}
    for kind in ("clean", "split", "merged"):
        v = np.asarray(groups.get(kind, []), np.float64).reshape(-1, 2)
        if not len(v):
            continue
        asr, seg = 100 * v.mean(0)
        share = 100 * (v[:, 0] - v[:, 1]).sum() / gap_total if gap_total else float("nan")
        summary[kind] = {"questions": len(v), "f1_asr": round(asr, 1), "f1_segmenter": round(seg, 1),
                         "share_of_gap": round(share, 1)}
        lines.append(f"| {kind} | {len(v)} ({100 * len(v) / total:.0f}%) | {asr:.1f} | {seg:.1f} | {asr - seg:.1f} | "
                     f"{share:.0f}% |")
    print("\n".join(lines))
    if args.output:
        Path(args.output).write_text(json.dumps({"settings": vars(args), "groups": summary}, indent=1) + "\n")


if __name__ == "__main__":
    main()
