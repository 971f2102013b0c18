"""GPU training throughput and model FLOP utilisation (MFU) at BERT-base size with bf16 and SDPA attention, SpeechBERT
against BertForQuestionAnswering on the same sequence length. Prepared to run as one script on a lent GPU machine.

Usage:
    python benchmarks/bench_gpu.py [--quick] [--batch 32] [--steps 20] [--frame_stacks 1 3] [--peak_tflops 989]

MFU = model FLOPs per second / the card's peak dense bf16 FLOPs (H100 and H200 SXM: 989 TFLOPs). Model FLOPs per
step: 6 x transformer parameters x tokens + 12 x layers x hidden x sequence^2 x sequences (attention), plus, for
SpeechBERT, 6 x audio-encoder parameters x frames (each frame passes every RNN weight once). --quick runs a tiny model
on whatever device is there (the CPU here), to check the script, and reports no MFU.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_train_step import QUESTION, SEGMENTS, SIZES, build_model, inputs  # noqa: E402
from benchmarks.common import RESULTS, median_seconds, positive_int, table, write_section  # noqa: E402


def flops(model, kind, data, config):
    batch, length = data["input_ids"].shape
    bert_params = sum(p.numel() for n, p in model.named_parameters()
                      if n.startswith("bert.") and not n.startswith("bert.audio_encoder.")
                      and "embeddings" not in n)
    total = 6 * bert_params * batch * length
    total += 12 * config.num_hidden_layers * config.hidden_size * length**2 * batch
    if kind == "speechbert":
        encoder = sum(p.numel() for p in model.bert.audio_encoder.parameters())
        total += 6 * encoder * int(data["audio_feature_lengths"].sum()) / config.audio_frame_stack
    return total


def measure(kind, size, batch, stack, steps, device):
    model, config = build_model(kind, size, stack)
    config._attn_implementation = "sdpa"
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device == "cuda")
    data = inputs(kind, batch, config, np.random.default_rng(0), device)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device, dtype=dtype, enabled=device == "cuda"):
            loss = model(**data).loss
        loss.backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = median_seconds(step, steps, warmup=3)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    return seconds, flops(model, kind, data, config), peak


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny model, 2 steps, any device")
    parser.add_argument("--size", default="base", choices=list(SIZES))
    parser.add_argument("--batch", type=positive_int, default=32)
    parser.add_argument("--steps", type=positive_int, default=20)
    parser.add_argument("--frame_stacks", nargs="+", type=positive_int, default=[1, 3])
    parser.add_argument("--peak_tflops", type=float, default=989.0, help="the card's dense bf16 peak")
    parser.add_argument("--results", default=None)
    args = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.quick:
        args.size, args.batch, args.steps = "tiny", 2, 2
    elif device != "cuda":
        raise SystemExit("no GPU here: run this on a GPU machine (or use --quick to check the script)")
    bert_seconds, bert_flops, bert_peak = measure("bert", args.size, args.batch, 1, args.steps, device)
    rows = [["BERT", "-", f"{1000 * bert_seconds:.1f}", f"{args.batch / bert_seconds:.1f}",
             "-" if args.quick else f"{100 * bert_flops / bert_seconds / args.peak_tflops / 1e12:.1f}%", "1.00x",
             f"{bert_peak:.2f}"]]
    for stack in args.frame_stacks:
        seconds, model_flops, peak = measure("speechbert", args.size, args.batch, stack, args.steps, device)
        rows.append(["SpeechBERT", stack, f"{1000 * seconds:.1f}", f"{args.batch / seconds:.1f}",
                     "-" if args.quick else f"{100 * model_flops / seconds / args.peak_tflops / 1e12:.1f}%",
                     f"{seconds / bert_seconds:.2f}x", f"{peak:.2f}"])
    for row in rows:
        print(" | ".join(str(c) for c in row))
    body = table(["model", "frame stack", "step (ms)", "sequences/s", "MFU", "time vs BERT", "peak GiB"], rows)
    body += (f"\n\n{args.size} size, batch {args.batch}, {QUESTION + SEGMENTS + 3} positions (180 audio segments), "
             f"{'bf16 autocast, ' if device == 'cuda' else ''}SDPA attention, fused AdamW, median of {args.steps} "
             "steps after 3 warm-up steps.")
    write_section("GPU training throughput" + (" (quick)" if args.quick else ""), body,
                  Path(args.results) if args.results else RESULTS)


if __name__ == "__main__":
    main()
