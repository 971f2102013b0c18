"""Fine-tuning step with a frozen audio encoder (`run_sqa.py --freeze_audio_encoder`), soft word embeddings: what
caching the encoder's codes per passage and `soft_word_embedding_top_k` save.

Usage:
    python benchmarks/bench_frozen_finetune.py [--quick] [--encoder 2x256] [--segments 340] [--top_k 16]
        [--repeats 3] [--results benchmarks/RESULTS.md]

A step is `SpeechBertForQuestionAnswering`'s forward + backward + AdamW step at MiniLM size (6 x 384, vocabulary
30,522), batch 8, a 20-piece question and `--segments` audio segments per window (340: a 384-position window as
`run_sqa.py --max_length 384` fills it), segment lengths as bench_train_step.py draws them, `audio_frame_stack=3`,
the audio encoder frozen. Variants: the frames through the encoder every step (as before); the encoder's codes
given (`audio_codes`, what `sqa_train.data.PassageCodes` feeds once a passage is encoded); the same with the soft
word embedding over the k most similar pieces; direct codes (no soft word embedding) for scale. The models take
turns step by step, so drift in the machine's speed falls on all alike. Prints (and writes to RESULTS.md) each
variant's step time and its ratio to the first. `--quick` (a smoke run for the tests): tiny sizes, 1 repeat.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_step1 import encoder_size  # noqa: E402
from benchmarks.bench_train_step import segment_lengths  # noqa: E402
from benchmarks.common import RESULTS, positive_int, table, write_section  # noqa: E402
from speechbert import SpeechBertConfig, SpeechBertForQuestionAnswering  # noqa: E402

QUESTION = 20
MINILM = dict(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)
TINY = dict(vocab_size=2000, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)


def build(size, layers, hidden, mode, top_k):
    config = SpeechBertConfig(**size, max_position_embeddings=512, audio_frame_stack=3,
                              audio_encoder_num_layers=layers, audio_encoder_hidden_size=hidden,
                              audio_code_mode=mode, alignment_temperature=0.05, soft_word_embedding_top_k=top_k)
    torch.manual_seed(0)
    model = SpeechBertForQuestionAnswering(config).train()
    model.bert.audio_encoder.requires_grad_(False)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    return model, optimizer


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", type=encoder_size, default=(2, 256))
    parser.add_argument("--segments", type=positive_int, default=340)
    parser.add_argument("--batch", type=positive_int, default=8)
    parser.add_argument("--top_k", type=positive_int, default=16)
    parser.add_argument("--repeats", type=positive_int, default=3)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny model, batch 2, 1 repeat")
    args = parser.parse_args(argv)
    size = MINILM
    if args.quick:
        size, args.encoder, args.segments, args.batch, args.repeats = TINY, (1, 16), 24, 2, 1
    layers, hidden = args.encoder
    rng = np.random.default_rng(0)
    batch, segments = args.batch, args.segments
    lengths = torch.as_tensor(segment_lengths(batch * segments, rng)).reshape(batch, segments)
    features = torch.randn(batch, segments, int(lengths.max()), 39)
    features[torch.arange(features.shape[2])[None, None, :] >= lengths[..., None]] = 0
    length = QUESTION + segments + 3
    input_ids = torch.randint(1000, 2000, (batch, length))
    input_ids[:, 0], input_ids[:, QUESTION + 1], input_ids[:, -1] = 101, 102, 102
    common = {"attention_mask": torch.ones_like(input_ids), "audio_feature_lengths": lengths,
              "start_positions": torch.randint(QUESTION + 2, length - 1, (batch,)),
              "end_positions": torch.randint(QUESTION + 2, length - 1, (batch,))}
    variants = {
        "soft, frames through the encoder every step": ("soft_word_embedding", 0, False),
        "soft, cached codes": ("soft_word_embedding", 0, True),
        f"soft over the top {args.top_k} pieces, cached codes": ("soft_word_embedding", args.top_k, True),
        "direct codes, cached (no soft word embedding)": ("direct", 0, True),
    }
    runs = {}
    for name, (mode, top_k, cached) in variants.items():
        model, optimizer = build(size, layers, hidden, mode, top_k)
        ids = input_ids.clone()
        ids[:, QUESTION + 2 : -1] = model.config.audio_token_id
        inputs = dict(common, input_ids=ids)
        if cached:
            with torch.no_grad():
                codes = model.bert.encode_audio(features, lengths)
            padded = codes.new_zeros((*lengths.shape, codes.shape[-1]))
            padded[lengths > 0] = codes
            inputs["audio_codes"] = padded
        else:
            inputs["audio_features"] = features
        runs[name] = (model, optimizer, inputs)
    times = {name: [] for name in runs}
    for repeat in range(args.repeats + 1):  # the first round warms up
        for name, (model, optimizer, inputs) in runs.items():
            start = time.perf_counter()
            model(**inputs).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if repeat:
                times[name].append(time.perf_counter() - start)
    first = statistics.median(next(iter(times.values())))
    rows = []
    for name, own in times.items():
        seconds = statistics.median(own)
        rows.append([name, f"{seconds:.2f}", f"{first / seconds:.2f}x"])
        print(f"{name}: {seconds:.2f} s, {first / seconds:.2f}x faster than the first", flush=True)
    body = (f"One fine-tuning step ({batch} windows x {segments} segments, forward + backward + AdamW, "
            f"{'tiny' if args.quick else 'MiniLM'} size, {layers} x biGRU-{hidden} audio encoder frozen); median of "
            f"{args.repeats}.\n\n" + table(["variant", "step (s)", "speed-up"], rows))
    write_section("Frozen-encoder fine-tuning step" + (" (quick)" if args.quick else ""), body, args.results)


if __name__ == "__main__":
    main()
