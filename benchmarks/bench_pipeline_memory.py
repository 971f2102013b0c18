"""Peak memory of the spoken-question-answering pipeline against the number of questions about one long passage.

Usage:
    python benchmarks/bench_pipeline_memory.py [--quick] [--seconds 600] [--questions 1 10 30] [--size minilm]

Each measurement runs in a fresh process (peak RSS is per process): a MiniLM-size SpeechBERT answers N questions
about a 10-minute passage with given word segments (no ASR). "all windows at once" is the pipeline before windows
were batched (`window_batch_size` larger than the number of windows: every window's padded features are built and
run together); "batched" is the default (`window_batch_size=16`). Printed: peak RSS and its growth per question.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS, positive_float, positive_int, table, write_section  # noqa: E402

CHILD = r"""
import json, resource, sys
import numpy as np, torch
sys.path.insert(0, {root!r})
from benchmarks.bench_inference import passage
from benchmarks.bench_train_step import SIZES
from pathlib import Path
from transformers import BertTokenizer
from speechbert import SpeechBertConfig, SpeechBertFeatureExtractor, SpeechBertForQuestionAnswering, SpeechBertProcessor
from speechbert.pipeline_speechbert import SpokenQuestionAnsweringPipeline, register

seconds, questions, size, batch = {seconds}, {questions}, {size!r}, {batch}
rng = np.random.default_rng(0)
audio, segments = passage(seconds, rng)
vocab = Path({vocab!r})
tokenizer = BertTokenizer(str(vocab))
torch.manual_seed(0)
config = SpeechBertConfig(**SIZES[size], vocab_size=len(tokenizer), audio_token_id=1, mask_token_id=5,
                          max_position_embeddings=512)
model = SpeechBertForQuestionAnswering(config).eval()
register()
qa = SpokenQuestionAnsweringPipeline(model=model, processor=SpeechBertProcessor(SpeechBertFeatureExtractor(), tokenizer),
                                     task="spoken-question-answering")
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
asked = [" ".join(f"w{{(i * 7 + j) % 200}}" for j in range(12)) for i in range(questions)]
answers = qa(audio, question=asked, sampling_rate=16000, word_segments=segments, window_batch_size=batch)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"base_mb": base / 1024, "peak_mb": peak / 1024, "segments": len(segments)}}))
"""


def measure(root, vocab, seconds, questions, size, batch):
    code = CHILD.format(root=str(root), vocab=str(vocab), seconds=seconds, questions=questions, size=size, batch=batch)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise SystemExit(f"measuring {questions} questions (window_batch_size={batch}) failed:\n"
                         f"{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny model, 60-second passage, 1 and 3 questions")
    parser.add_argument("--size", default="minilm", choices=["tiny", "minilm", "base"])
    parser.add_argument("--seconds", type=positive_float, default=600.0)
    parser.add_argument("--questions", nargs="+", type=positive_int, default=[1, 10, 30])
    parser.add_argument("--results", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.seconds, args.questions = "tiny", 60.0, [1, 3]
    root = Path(__file__).resolve().parents[1]
    vocab = Path(__file__).resolve().parent / ".memory_vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] +
                               [f"w{i}" for i in range(200)]) + "\n")
    rows, peaks = [], {}
    try:
        for label, batch in (("all windows at once", 10**9), ("batched (window_batch_size=16)", 16)):
            for n in args.questions:
                found = measure(root, vocab, args.seconds, n, args.size, batch)
                peaks[(label, n)] = found["peak_mb"]
                rows.append([label, n, found["segments"], f"{found['base_mb']:.0f}", f"{found['peak_mb']:.0f}",
                             f"{found['peak_mb'] - found['base_mb']:.0f}"])
                print(" | ".join(str(c) for c in rows[-1]), flush=True)
    finally:
        vocab.unlink()
    lines = []
    first, last = args.questions[0], args.questions[-1]
    before = args.questions[-2] if len(args.questions) > 2 else first
    for label in ("all windows at once", "batched (window_batch_size=16)"):
        growth = (peaks[(label, last)] - peaks[(label, before)]) / max(1, last - before)
        lines.append(f"- {label}: {growth:.1f} MB more peak RSS per question from {before} to {last} questions; "
                     f"{peaks[(label, last)] / peaks[(label, first)]:.2f}x the {first}-question peak at {last}")
    lines.append("- batched, the peak grows only until the windows fill one batch (a 10-minute passage is about 6 "
                 "windows a question), then stays flat")
    body = table(["pipeline", "questions", "segments", "RSS before the call (MB)", "peak RSS (MB)",
                  "added by the call (MB)"], rows)
    body += (f"\n\n{args.size} SpeechBERT, a {args.seconds:.0f} s passage with given word segments (no ASR), one "
             "process per row:\n" + "\n".join(lines))
    print(body)
    write_section("Pipeline peak memory against questions" + (" (quick)" if args.quick else ""), body,
                  Path(args.results) if args.results else RESULTS)


if __name__ == "__main__":
    main()
