"""Training-step cost of SpeechBERT against transformers' BertForQuestionAnswering with the same config, on text inputs of
the same sequence length: time ratio, the audio encoder's share of the step, peak memory ratio.

Usage:
    python benchmarks/bench_train_step.py [--quick] [--sizes minilm base] [--batches 8 32] [--repeats 5]
        [--frame_stacks 1 3] [--frozen_frame_stacks 3] [--results benchmarks/RESULTS.md]

A step is forward + backward + AdamW step. Inputs: a 20-piece question and 180 audio segments (202 positions);
segment lengths follow word durations of the embedded corpus (about 25 frames, 10 ms each). Each configuration runs in a
fresh process so its peak resident memory is its own. "frozen" rows fine-tune with the audio encoder's weights fixed
(`run_sqa.py --freeze_audio_encoder`): the encoder then runs forward only. Goal: SpeechBERT's step at most 1.15x BERT's.
"""

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS, median_seconds, table, write_section  # noqa: E402

SIZES = {
    "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37),
    "minilm": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}
QUESTION, SEGMENTS = 20, 180


def segment_lengths(count, rng):
    """Frames per word segment, drawn from the embedded corpus's ASR word durations (or a matching log-normal)."""
    try:
        from sqa_data.dataset import read_records

        records = [r for recs in read_records(Path(__file__).resolve().parents[1] / "data" / "embedded").values()
                   for r in recs]
        durations = np.array([e - s for r in records for s, e in zip(r["asr_starts"], r["asr_ends"])])
        frames = np.clip(np.round(durations * 100), 1, 100).astype(int)
    except (FileNotFoundError, ImportError):
        frames = np.clip(rng.lognormal(np.log(25), 0.5, 10000).round(), 1, 100).astype(int)
    return rng.choice(frames, count)


def inputs(kind, batch, config, rng, device):
    length = QUESTION + SEGMENTS + 3
    input_ids = torch.randint(1000, 2000, (batch, length))
    input_ids[:, 0], input_ids[:, QUESTION + 1], input_ids[:, -1] = 101, 102, 102
    data = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids),
            "token_type_ids": torch.zeros_like(input_ids),
            "start_positions": torch.randint(QUESTION + 2, length - 1, (batch,)),
            "end_positions": torch.randint(QUESTION + 2, length - 1, (batch,))}
    if kind == "speechbert":
        data["input_ids"][:, QUESTION + 2 : -1] = config.audio_token_id
        lengths = torch.from_numpy(segment_lengths(batch * SEGMENTS, rng)).reshape(batch, SEGMENTS)
        frames = int(lengths.max())
        features = torch.randn(batch, SEGMENTS, frames, config.feature_size)
        features[torch.arange(frames)[None, None, :] >= lengths[..., None]] = 0
        data.update(audio_features=features, audio_feature_lengths=lengths)
    return {k: v.to(device) for k, v in data.items()}


def build_model(kind, size, frame_stack, frozen=False):
    """A seeded SpeechBertForQuestionAnswering or BertForQuestionAnswering of `size`, and its config."""
    from transformers import BertConfig, BertForQuestionAnswering

    from speechbert import SpeechBertConfig, SpeechBertForQuestionAnswering

    torch.manual_seed(0)
    fields = dict(SIZES[size], vocab_size=30522, max_position_embeddings=512)
    if kind == "speechbert":
        config = SpeechBertConfig(**fields, audio_frame_stack=frame_stack)
        model = SpeechBertForQuestionAnswering(config)
        model.bert.audio_encoder.requires_grad_(not frozen)
        return model, config
    config = BertConfig(**fields)
    return BertForQuestionAnswering(config), config


def measure(kind, size, batch, frame_stack, repeats, device, frozen=False):
    """One configuration (run in its own process): step seconds, audio-encoder seconds, peak memory (MiB)."""
    rng = np.random.default_rng(0)
    model, config = build_model(kind, size, frame_stack, frozen)
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    data = inputs(kind, batch, config, rng, device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        model(**data).loss.backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()

    seconds = median_seconds(step, repeats)
    encoder = None
    if kind == "speechbert":
        real = data["audio_feature_lengths"] > 0

        def encoder_step():
            codes = model.bert.audio_encoder(data["audio_features"][real], data["audio_feature_lengths"][real])
            if codes.requires_grad:  # a frozen encoder runs forward only
                codes.sum().backward()
            if device == "cuda":
                torch.cuda.synchronize()

        encoder = median_seconds(encoder_step, repeats)
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "encoder_seconds": encoder, "peak_mib": peak}


def run_isolated(args):
    result = subprocess.run([sys.executable, __file__, "--_one", json.dumps(args)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny model, batch 2, one repeat: seconds")
    parser.add_argument("--sizes", nargs="+", default=["minilm", "base"], choices=list(SIZES))
    parser.add_argument("--batches", nargs="+", type=int, default=[8, 32])
    parser.add_argument("--frame_stacks", nargs="+", type=int, default=[1, 3],
                        help="audio_frame_stack values to measure (1 = one frame per RNN step)")
    parser.add_argument("--frozen_frame_stacks", nargs="*", type=int, default=[3],
                        help="audio_frame_stack values also measured with the audio encoder frozen")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--results", default=None, help="RESULTS.md to update (default benchmarks/RESULTS.md)")
    parser.add_argument("--_one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._one:
        print(json.dumps(measure(**json.loads(args._one))))
        return
    if args.quick:
        args.sizes, args.batches, args.repeats, args.frame_stacks, args.frozen_frame_stacks = ["tiny"], [2], 1, [1, 3], [3]
    rows = []
    for size in args.sizes:
        for batch in args.batches:
            bert = run_isolated(dict(kind="bert", size=size, batch=batch, frame_stack=1, repeats=args.repeats,
                                     device=args.device))
            variants = [(stack, False) for stack in args.frame_stacks]
            variants += [(stack, True) for stack in args.frozen_frame_stacks]
            for stack, frozen in variants:
                speech = run_isolated(dict(kind="speechbert", size=size, batch=batch, frame_stack=stack,
                                           repeats=args.repeats, device=args.device, frozen=frozen))
                row = [size, batch, stack, "frozen" if frozen else "trained", f"{bert['seconds']:.3f}",
                       f"{speech['seconds']:.3f}",
                       f"{speech['seconds'] / bert['seconds']:.2f}x",
                       f"{100 * speech['encoder_seconds'] / speech['seconds']:.0f}%",
                       f"{speech['peak_mib'] / bert['peak_mib']:.2f}x"]
                rows.append(row)
                print(" | ".join(str(c) for c in row), flush=True)
    body = table(["size", "batch", "frame stack", "audio encoder", "BERT step (s)", "SpeechBERT step (s)", "time ratio",
                  "audio encoder share", "peak memory ratio"], rows)
    body += ("\n\nGoal: time ratio at most 1.15x. Inputs: a 20-piece question and 180 audio segments (202 positions),"
             " segment lengths from the embedded corpus's ASR word durations. Audio encoder: bidirectional GRU, "
             "128 units per direction; frame stack k feeds k frames per RNN step; \"frozen\": its weights fixed "
             "(`run_sqa.py --freeze_audio_encoder`), so it runs forward only and its share is the forward's.")
    write_section("Training step: SpeechBERT vs BERT" + (" (quick)" if args.quick else ""), body,
                  Path(args.results) if args.results else RESULTS)


if __name__ == "__main__":
    main()
