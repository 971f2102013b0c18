"""Inference latency: one question about a 60-second passage, features + model (ASR excluded), and feature extraction
speed in times real time per core.

Usage:
    python benchmarks/bench_inference.py [--quick] [--size minilm] [--repeats 20] [--frame_stacks 1 3] [--no_int8]

The passage has 150 word segments (2.5 words per second, lengths from the embedded corpus); the question 12 pieces.
Goals: under 30 ms per question at MiniLM size on CPU; feature extraction at least 500x real time per core.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_train_step import SIZES, segment_lengths  # noqa: E402
from benchmarks.common import RESULTS, median_seconds, positive_float, positive_int, table, write_section  # noqa: E402


def passage(seconds, rng):
    """Speech-like noise of `seconds` with back-to-back word segments of corpus-like lengths."""
    frames = segment_lengths(int(seconds * 2.5), rng)
    ends = np.cumsum(frames) / 100
    keep = ends < seconds - 0.05
    ends = ends[keep]
    starts = np.r_[0.0, ends[:-1]]
    audio = (0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32)
    return audio, list(zip(starts.round(3), ends.round(3)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny model, 10-second passage, 2 repeats")
    parser.add_argument("--size", default="minilm", choices=list(SIZES))
    parser.add_argument("--seconds", type=positive_float, default=60.0)
    parser.add_argument("--repeats", type=positive_int, default=20)
    parser.add_argument("--frame_stacks", nargs="+", type=positive_int, default=[1, 3])
    parser.add_argument("--no_int8", action="store_true", help="skip the dynamic int8 rows")
    parser.add_argument("--results", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.seconds, args.repeats = "tiny", 10.0, 2
    from transformers import BertTokenizer

    from speechbert import (
        SpeechBertConfig,
        SpeechBertFeatureExtractor,
        SpeechBertForQuestionAnswering,
        SpeechBertProcessor,
    )

    rng = np.random.default_rng(0)
    audio, segments = passage(args.seconds, rng)
    vocab = Path(__file__).resolve().parent / ".bench_vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] +
                               [f"w{i}" for i in range(200)]) + "\n")
    tokenizer = BertTokenizer(str(vocab))
    vocab.unlink()
    extractor = SpeechBertFeatureExtractor()
    processor = SpeechBertProcessor(extractor, tokenizer)
    question = " ".join(f"w{i}" for i in range(12))

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # "per core"
    extract = median_seconds(lambda: extractor.extract(audio, segments, sampling_rate=16000), args.repeats)
    torch.set_num_threads(threads)

    from sqa_train.quantization import quantize_int8

    rows = []
    variants = [(stack, "fp32") for stack in args.frame_stacks]
    variants += [] if args.no_int8 else [(stack, "int8") for stack in args.frame_stacks]
    for stack, precision in variants:
        torch.manual_seed(0)
        config = SpeechBertConfig(**SIZES[args.size], vocab_size=len(tokenizer), audio_token_id=1, mask_token_id=5,
                                  audio_frame_stack=stack)
        model = SpeechBertForQuestionAnswering(config).eval()
        if precision == "int8":
            model = quantize_int8(model)

        keys = ("input_ids", "attention_mask", "token_type_ids", "audio_features", "audio_feature_lengths")

        def prepare():
            return processor(question=question, audio=audio, word_segments=segments, sampling_rate=16000,
                             return_tensors="pt")

        def forward(inputs):
            with torch.inference_mode():
                return model(**{k: inputs[k] for k in keys})

        def answer():
            inputs = prepare()
            return processor.decode_answer(inputs, forward(inputs))

        total = median_seconds(answer, args.repeats, warmup=2)
        inputs = prepare()
        outputs = forward(inputs)
        parts = [median_seconds(prepare, args.repeats), median_seconds(lambda: forward(inputs), args.repeats),
                 median_seconds(lambda: model.bert.encode_audio(inputs["audio_features"],
                                                               inputs["audio_feature_lengths"]), args.repeats),
                 median_seconds(lambda: processor.decode_answer(inputs, outputs), args.repeats)]
        rows.append([args.size, stack, precision, len(segments), f"{1000 * total:.1f}",
                     *(f"{1000 * p:.1f}" for p in parts)])
        print(" | ".join(str(c) for c in rows[-1]), flush=True)
    body = table(["size", "frame stack", "weights", "segments", "ms per question", "processor (features)", "model",
                  "of which audio encoder", "decoding"], rows)
    body += (f"\n\nFeature extraction (MFCC + deltas of the whole passage, sliced into {len(segments)} segments), "
             f"one thread: {1000 * extract:.1f} ms for {args.seconds:.0f} s of audio = "
             f"**{args.seconds / extract:.0f}x real time per core** (goal: at least 500x).\n"
             "Goal for a question: under 30 ms at MiniLM size on CPU. ASR is excluded. int8: dynamic quantisation "
             "of the Linear and GRU layers (`sqa_train.quantization.quantize_int8`, `run_sqa.py --quantize int8`).")
    write_section("Inference and feature extraction" + (" (quick)" if args.quick else ""), body,
                  Path(args.results) if args.results else RESULTS)


if __name__ == "__main__":
    main()
