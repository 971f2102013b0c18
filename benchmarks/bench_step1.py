"""Step-1 (joint embedding) training-step cost: the cosine softmax over the whole vocabulary against its sampled
estimate (`alignment_num_negatives`), for each audio-encoder size.

Usage:
    python benchmarks/bench_step1.py [--quick] [--negatives 2048] [--encoders 1x128 2x256] [--repeats 5]
        [--results benchmarks/RESULTS.md]

A step is `SpeechBertForPreTraining`'s audio-only forward (encoder, decoder, reconstruction + alignment + norm losses)
+ backward + AdamW step on the encoder and decoder, as `run_pretraining.py --stage 1` trains them: 8 items of 64
segments, segment lengths drawn as bench_train_step.py draws them, MiniLM's vocabulary (30,522 x 384),
`audio_frame_stack=3`. The models of one encoder size take turns step by step, so drift in the machine's speed falls
on both alike. Prints (and writes to RESULTS.md) the time ratio full / sampled. `--quick` (a smoke run for the tests):
2 items, the default encoder, 256 drawn pieces, 1 repeat, written as its own "(quick)" section.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_train_step import segment_lengths  # noqa: E402
from benchmarks.common import RESULTS, positive_int, table, write_section  # noqa: E402
from speechbert import SpeechBertConfig, SpeechBertForPreTraining  # noqa: E402

SEGMENTS = 64


def encoder_size(text: str) -> tuple[int, int]:
    try:
        layers, hidden = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"an encoder size is LAYERSxHIDDEN, e.g. 2x256; got {text!r}") from None
    if layers < 1 or hidden < 1:
        raise argparse.ArgumentTypeError(f"encoder layers and hidden size must be positive, got {text!r}")
    return layers, hidden


def build(layers, hidden, negatives):
    config = SpeechBertConfig(
        vocab_size=30522, hidden_size=384, num_hidden_layers=1, num_attention_heads=12, intermediate_size=64,
        audio_frame_stack=3, audio_encoder_num_layers=layers, audio_encoder_hidden_size=hidden,
        alignment_loss_type="cosine_softmax", alignment_temperature=0.05, norm_loss_weight=1.0,
        alignment_num_negatives=negatives)
    model = SpeechBertForPreTraining(config).train()
    trained = [p for n, p in model.named_parameters() if n.startswith(("bert.audio_encoder.", "audio_decoder."))]
    return model, torch.optim.AdamW(trained, lr=1e-3)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--negatives", type=int, default=2048)
    parser.add_argument("--encoders", type=encoder_size, nargs="+", default=[(1, 128), (2, 256)])
    parser.add_argument("--repeats", type=positive_int, default=5)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 items, 1x128, 256 drawn, 1 repeat")
    args = parser.parse_args(argv)
    items = 8
    if args.quick:
        items, args.negatives, args.encoders, args.repeats = 2, 256, [(1, 128)], 1
    if args.negatives < 1:
        parser.error(f"--negatives must be at least 1, got {args.negatives}")
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    lengths = torch.as_tensor(segment_lengths(items * SEGMENTS, rng)).reshape(items, SEGMENTS)
    features = torch.randn(items, SEGMENTS, int(lengths.max()), 39)
    words = torch.randint(1000, 30000, (items, SEGMENTS))
    rows = []
    for layers, hidden in args.encoders:
        models = {n: build(layers, hidden, n) for n in (0, args.negatives)}
        times = {n: [] for n in models}
        for repeat in range(args.repeats + 1):  # the first round warms up
            for negatives, (model, optimizer) in models.items():
                start = time.perf_counter()
                out = model(audio_features=features, audio_feature_lengths=lengths, audio_word_ids=words)
                out.loss.backward()
                optimizer.step()
                optimizer.zero_grad()
                if repeat:
                    times[negatives].append(time.perf_counter() - start)
        full, sampled = statistics.median(times[0]), statistics.median(times[args.negatives])
        rows.append([f"{layers} x biGRU-{hidden}", f"{full:.2f}", f"{sampled:.2f}", f"{full / sampled:.2f}x"])
        print(f"{layers}x{hidden}: whole vocabulary {full:.2f} s, {args.negatives} drawn {sampled:.2f} s, "
              f"{full / sampled:.2f}x", flush=True)
    body = (f"One step-1 step ({items} items x {SEGMENTS} segments, forward + backward + AdamW), the cosine softmax "
            f"over the whole vocabulary against the batch's words + {args.negatives} drawn pieces; median of "
            f"{args.repeats}.\n\n"
            + table(["audio encoder", "whole vocabulary (s)", f"{args.negatives} drawn (s)", "speed-up"], rows))
    name = "Step-1 step: whole vocabulary against sampled softmax" + (" (quick)" if args.quick else "")
    write_section(name, body, args.results)


if __name__ == "__main__":
    main()
