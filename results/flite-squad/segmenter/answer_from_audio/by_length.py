"""F1 / EM of `answer_from_audio.py`'s answers by gold answer length, read from the audio against the ASR words of
the same spans, from its --output JSON files (every question's answers):

    python results/flite-squad/segmenter/answer_from_audio/by_length.py outputs/answer_from_audio/test.json \
        outputs/answer_from_audio/validation.json > results/flite-squad/segmenter/answer_from_audio/by_length.md

A question's length is its shortest reference answer, in words. "words equal": of the predicted spans whose audio
reading has as many words as the ASR's, the share of words that are the same (position by position).
"""

import json
import sys
from collections import defaultdict

BUCKETS = (("1", 1, 1), ("2", 2, 2), ("3", 3, 3), ("4-5", 4, 5), ("6+", 6, 10**9))


def table(path: str) -> str:
    data = json.load(open(path))
    questions, summary = data["questions"], data["summary"]
    by_bucket = defaultdict(list)
    for q in questions:
        length = min(len(r.split()) for r in q["references"])
        by_bucket[next(name for name, lo, hi in BUCKETS if lo <= length <= hi)].append(q)
    lines = [f"### {summary['split']} ({len(questions)} questions, {summary['model']})", "",
             "| answer words | questions | F1 / EM read from the audio | F1 / EM, ASR words of the span | AOS |",
             "|---|---|---|---|---|"]
    for name, _, _ in BUCKETS:
        qs = by_bucket[name]
        if not qs:
            continue

        def mean(key, qs=qs):
            return 100 * sum(q[key] for q in qs) / len(qs)

        lines.append(f"| {name} | {len(qs)} | {mean('heard_f1'):.1f} / {mean('heard_em'):.1f} | "
                     f"{mean('asr_f1'):.1f} / {mean('asr_em'):.1f} | {mean('aos'):.1f} |")
    same = total = 0
    for q in questions:
        heard, asr = q["heard"].split(), q["asr_words"].split()
        if len(heard) == len(asr):
            total += len(heard)
            same += sum(h == a for h, a in zip(heard, asr))
    lines += ["", f"Words equal where the two readings have as many words: {same} of {total} "
                  f"({100 * same / max(total, 1):.1f}%).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    print("\n".join(table(path) for path in sys.argv[1:]))
