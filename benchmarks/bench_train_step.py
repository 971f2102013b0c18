"""Training-step cost of SpeechBERT against transformers' BertForQuestionAnswering with the same config, on text inputs of
the same sequence length: time ratio, the audio encoder's share of the step, peak memory ratio.

Usage:
    python benchmarks/bench_train_step.py [--quick] [--sizes minilm base] [--batches 8 32] [--repeats 5]
        [--frame_stacks 1 3] [--frozen_frame_stacks 3] [--results benchmarks/RESULTS.md]

A step is forward + backward + AdamW step. Inputs: a 20-piece question and 180 audio segments (202 positions);
segment lengths follow word durations of the embedded corpus (33 frames of 10 ms on average, at most 100). The models
of one size and batch are timed in one process, taking turns step by step so that drift in the machine's speed falls
on all of them alike; peak memory is measured in a fresh process per model. "frozen" rows fine-tune with the audio
encoder's weights fixed (`run_sqa.py --freeze_audio_encoder`): the encoder then runs forward only.
Goal: SpeechBERT's step at most 1.15x BERT's.
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS, median_seconds, positive_int, table, write_section  # noqa: E402

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


def setup(kind, size, batch, frame_stack, device, frozen=False):
    """A model in training mode, its AdamW, its inputs and a function running one training step."""
    rng = np.random.default_rng(0)
    model, config = build_model(kind, size, frame_stack, frozen)
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    data = inputs(kind, batch, config, rng, device)

    def step():
        model(**data).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)  # frees the gradients while the other models of the round run
        if device == "cuda":
            torch.cuda.synchronize()

    return model, data, step


def peak_memory(kind, size, batch, frame_stack, device, frozen=False):
    """Peak memory (MiB) of two training steps, in a process of its own (run_isolated): resident set on CPU."""
    _, _, step = setup(kind, size, batch, frame_stack, device, frozen)
    step()
    step()
    if device == "cuda":
        return {"peak_mib": torch.cuda.max_memory_allocated() / 2**20}
    return {"peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def interleaved_times(size, batch, variants, repeats, device):
    """Step seconds of BERT and each SpeechBERT variant `(frame_stack, frozen)`, measured in one process in rounds:
    each round times one step of every model, in a rotating order, so the machine's drift over a run (other load,
    clock changes) falls on all of them alike. Returns BERT's median step, and per variant its median step, the
    median of its per-round ratio to BERT's step, and its audio encoder's median forward (+ backward) time."""
    models = [setup("bert", size, batch, 1, device)] + [
        setup("speechbert", size, batch, stack, device, frozen) for stack, frozen in variants]
    for _, _, step in models:  # warm-up
        step()
    times = [[] for _ in models]
    for round_ in range(repeats):
        order = list(range(len(models)))
        order = order[round_ % len(order):] + order[: round_ % len(order)]
        for i in order:
            start = time.perf_counter()
            models[i][2]()
            times[i].append(time.perf_counter() - start)
    results = []
    for (model, data, _), own in zip(models[1:], times[1:]):

        def encoder_step(model=model, data=data):  # the model's own path: packing plus the RNN and projection
            codes = model.bert.encode_audio(data["audio_features"], data["audio_feature_lengths"])
            if codes.requires_grad:  # a frozen encoder runs forward only
                codes.sum().backward()
            if device == "cuda":
                torch.cuda.synchronize()

        results.append({"seconds": statistics.median(own),
                        "ratio": statistics.median(a / b for a, b in zip(own, times[0])),
                        "encoder_seconds": median_seconds(encoder_step, repeats)})
    return {"bert_seconds": statistics.median(times[0]), "variants": results}


def run_isolated(args):
    result = subprocess.run([sys.executable, __file__, "--_one", json.dumps(args)], capture_output=True, text=True)
    if result.returncode < 0:
        raise RuntimeError(f"the measuring process for {args} was killed by signal {-result.returncode} (out of "
                           f"memory?): {result.stderr[-2000:]}")
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny model, batch 2, one repeat: seconds")
    parser.add_argument("--sizes", nargs="+", default=["minilm", "base"], choices=list(SIZES))
    parser.add_argument("--batches", nargs="+", type=positive_int, default=[8, 32])
    parser.add_argument("--frame_stacks", nargs="+", type=positive_int, default=[1, 3],
                        help="audio_frame_stack values to measure (1 = one frame per RNN step)")
    parser.add_argument("--frozen_frame_stacks", nargs="*", type=positive_int, default=[3],
                        help="audio_frame_stack values also measured with the audio encoder frozen")
    parser.add_argument("--repeats", type=positive_int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--results", default=None, help="RESULTS.md to update (default benchmarks/RESULTS.md)")
    parser.add_argument("--_one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._one:
        job = json.loads(args._one)
        function = interleaved_times if job.pop("what") == "times" else peak_memory
        print(json.dumps(function(**job)))
        return
    if args.quick:
        args.sizes, args.batches, args.repeats = ["tiny"], [2], 1
        args.frame_stacks, args.frozen_frame_stacks = [1, 3], [3]
    variants = [(stack, False) for stack in args.frame_stacks] + [(stack, True) for stack in args.frozen_frame_stacks]
    rows = []
    for size in args.sizes:
        for batch in args.batches:
            timing = run_isolated(dict(what="times", size=size, batch=batch, variants=variants,
                                       repeats=args.repeats, device=args.device))
            bert_mib = run_isolated(dict(what="memory", kind="bert", size=size, batch=batch, frame_stack=1,
                                         device=args.device))["peak_mib"]
            for (stack, frozen), speech in zip(variants, timing["variants"]):
                speech_mib = run_isolated(dict(what="memory", kind="speechbert", size=size, batch=batch,
                                               frame_stack=stack, device=args.device, frozen=frozen))["peak_mib"]
                row = [size, batch, stack, "frozen" if frozen else "trained", f"{timing['bert_seconds']:.3f}",
                       f"{speech['seconds']:.3f}", f"{speech['ratio']:.2f}x",
                       f"{100 * speech['encoder_seconds'] / speech['seconds']:.0f}%",
                       f"{speech_mib / bert_mib:.2f}x"]
                rows.append(row)
                print(" | ".join(str(c) for c in row), flush=True)
    body = table(["size", "batch", "frame stack", "audio encoder", "BERT step (s)", "SpeechBERT step (s)",
                  "time ratio", "audio encoder share", "peak memory ratio"], rows)
    body += ("\n\nGoal: time ratio at most 1.15x. The time ratio is the median over rounds of SpeechBERT's step over "
             "BERT's step in the same round (all models of a row live in one process and take turns, one step each "
             f"per round, {args.repeats} rounds after a warm-up); peak memory comes from separate processes. Inputs: "
             "a 20-piece question and 180 audio segments (202 positions), segment lengths from the embedded corpus's "
             "ASR word durations. Audio encoder: bidirectional GRU, "
             "128 units per direction; frame stack k feeds k frames per RNN step; \"frozen\": its weights fixed "
             "(`run_sqa.py --freeze_audio_encoder`), so it runs forward only and its share is the forward's.")
    write_section("Training step: SpeechBERT vs BERT" + (" (quick)" if args.quick else ""), body,
                  Path(args.results) if args.results else RESULTS)


if __name__ == "__main__":
    main()
