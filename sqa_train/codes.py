"""How word-like SpeechBERT's audio codes are: nearest word piece of every reference word segment's code.

Usage:
    python -m sqa_train.codes --model outputs/pretraining --dataset outputs/benchmark/dataset \
        --split validation test [--output codes.json] [--speech outputs/espeak-validation]

For every reference word segment of a split, the code the audio encoder gives it is compared (cosine) with BERT's
input embedding of every word-initial piece of the vocabulary (no `##` continuations, no special or `[unused]`
tokens); top-1 / top-10 accuracy is against the word's first piece. "seen" words are those whose first piece occurs
in the step-1 training data (the train split's reference words), the rest "unseen". Percentages, per split:

    {"validation": {"segments": ..., "top1": ..., "top10": ..., "top1_seen": ..., "top10_seen": ...,
                    "top1_unseen": ..., "top10_unseen": ..., "seen_share": ..., "code_norm": ...,
                    "target_norm": ..., "soft_top_mass": {"1": ..., "16": ..., "64": ...},
                    "soft_embedding": {"norm": ..., "cosine_to_target": ..., "seen_mass": ...},
                    "per_voice": {"awb": {"segments": ..., "top1": ..., "top10": ...}, ...}}}

`soft_top_mass`: how much of each code's soft word embedding weights (`audio_code_mode="soft_word_embedding"`,
the whole vocabulary at `alignment_temperature`) its k most similar pieces hold (`soft_word_embedding_top_k`).
`soft_embedding`: what BERT reads in that mode (over the model's `soft_word_embedding_pieces` if it has them): its
mean norm (compare `target_norm`), its mean cosine to the target word's embedding, and the share (percent) of the
whole-vocabulary weights on pieces the step-1 data contains ("seen"; the encoder cannot have heard the others).

written to `codes.json` beside the model (merged with the splits already there) and printed as a table.
`run_pretraining.py` runs it at the end of each step.
"""

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch

from speechbert.processing_speechbert import first_pieces, word_initial_ids
from sqa_data.argtypes import list_items, positive_int

from .data import JointEmbeddingCollator, PassageFrames, joint_embedding_items

logger = logging.getLogger(__name__)


def check_codes_eval_splits(values) -> list[str]:
    """The training scripts' `--codes_eval_splits`: the splits named, spaces or commas between them ('none'
    dropped). A name that is no split (`val`, `dev`) is an error before training: it used to skip the measurement
    silently after it, and so did `validation,test`."""
    from sqa_data.dataset import SPLITS

    values = [values] if isinstance(values, str) else list(values)
    splits = [s for s in list_items(values) if s.lower() != "none"]
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ValueError(f"--codes_eval_splits {' '.join(values)!r}: unknown {unknown}, expected some of {SPLITS} "
                         "or 'none'")
    return splits


def seen_pieces(tokenizer, rows) -> set[int]:
    """First pieces of the reference words of `rows` (step 1's training data)."""
    seen, paragraphs = set(), set()
    for row in rows:
        if row["paragraph_id"] not in paragraphs:
            paragraphs.add(row["paragraph_id"])
            seen.update(first_pieces(tokenizer, row["ref_words"]).tolist())
    return seen


def encode_segments(model, feature_extractor, tokenizer, rows, audio_cache_dir=None, segments_per_item=64,
                    batch_size=8, num_workers=None):
    """Codes of the reference word segments of every passage of `rows`: (codes (N, H), first pieces (N,), voices).
    `num_workers` threads prepare the passages' audio and frames first (`PassageFrames.prefetch`)."""
    frames = PassageFrames(feature_extractor, audio_cache_dir)
    frames.prefetch(rows, num_workers)
    voices = {}

    def word_ids_of(row):
        voices[row["paragraph_id"]] = row.get("voice") or "unknown"
        return first_pieces(tokenizer, row["ref_words"])

    items = joint_embedding_items(rows, frames, word_ids_of, segments_per_item)
    collator = JointEmbeddingCollator(frames)
    bert = getattr(model, "bert", model)
    codes, targets, item_voices = [], [], []
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        for a in range(0, len(items), batch_size):
            batch = collator(items[a : a + batch_size])
            real = batch["audio_feature_lengths"] > 0
            codes.append(bert.encode_audio(batch["audio_features"].to(device),
                                           batch["audio_feature_lengths"].to(device)).float().cpu())
            targets.append(batch["audio_word_ids"][real])
            for item in items[a : a + batch_size]:
                item_voices += [voices[item["paragraph_id"]]] * (item["seg_end"] - item["seg_start"])
    model.train(was_training)
    if not codes:
        raise ValueError("no reference word segments in these rows: the split has no passage with ref_words")
    return torch.cat(codes), torch.cat(targets), np.array(item_voices)


def soft_top_mass(codes, embeddings, temperature, ks=(1, 16, 64), chunk=1024) -> dict:
    """Mean share (percent) of each code's soft-word-embedding weights, `softmax(cos(code, E) / temperature)` over
    the whole vocabulary, held by its k most similar pieces: how much `soft_word_embedding_top_k=k` leaves out."""
    table = torch.nn.functional.normalize(embeddings.float(), dim=1)
    normed = torch.nn.functional.normalize(codes.float(), dim=1) / temperature
    sums = {k: 0.0 for k in ks}
    for a in range(0, len(codes), chunk):
        weights = (normed[a : a + chunk] @ table.T).softmax(-1)
        top = weights.topk(min(max(ks), len(table)), dim=1).values.cumsum(1)  # (n, max k)
        for k in ks:
            sums[k] += float(top[:, min(k, len(table)) - 1].sum())
    return {str(k): round(100 * total / len(codes), 2) for k, total in sums.items()}


def soft_embedding_stats(codes, targets, embeddings, temperature, seen=None, pieces=None, chunk=1024) -> dict:
    """`soft_embedding` of codes.json (see the module's docstring): the soft word embedding's mean norm and cosine to
    the target word's embedding, over `pieces` (None: the whole vocabulary), and the mean weight share on `seen`."""
    embeddings = embeddings.float()
    rows = embeddings if pieces is None else embeddings[torch.as_tensor(list(pieces))]
    unit_rows = torch.nn.functional.normalize(rows, dim=1)
    unit_all = torch.nn.functional.normalize(embeddings, dim=1)
    seen_ids = None if seen is None else torch.as_tensor(sorted(seen), dtype=torch.long)
    normed = torch.nn.functional.normalize(codes.float(), dim=1) / temperature
    norms = cosines = masses = 0.0
    for a in range(0, len(codes), chunk):
        soft = (normed[a : a + chunk] @ unit_rows.T).softmax(-1) @ rows
        norms += float(soft.norm(dim=1).sum())
        cosines += float(torch.nn.functional.cosine_similarity(soft, embeddings[targets[a : a + chunk]], dim=1).sum())
        if seen_ids is not None:
            masses += float((normed[a : a + chunk] @ unit_all.T).softmax(-1)[:, seen_ids].sum())
    n = len(codes)
    return {"norm": round(norms / n, 4), "cosine_to_target": round(cosines / n, 4),
            "seen_mass": None if seen_ids is None else round(100 * masses / n, 2)}


def code_accuracy(codes, targets, embeddings, candidates, seen=None, voices=None, chunk=4096,
                  temperature=None, pieces=None) -> dict:
    """Top-1 / top-10 nearest-piece accuracy (cosine over `candidates`) of codes against their target pieces; with
    a `temperature`, also `soft_top_mass` and `soft_embedding` (over `pieces`, see `soft_embedding_stats`)."""
    candidates = torch.as_tensor(candidates)
    table = torch.nn.functional.normalize(embeddings[candidates].float(), dim=1)  # (V', H)
    normed = torch.nn.functional.normalize(codes.float(), dim=1)
    ranks, k = [], min(10, len(candidates))
    for a in range(0, len(codes), chunk):
        top = (normed[a : a + chunk] @ table.T).topk(k, dim=1).indices  # (n, k) into candidates
        hit = candidates[top] == targets[a : a + chunk, None]
        ranks.append(torch.where(hit.any(1), hit.float().argmax(1), torch.full((len(hit),), 10)))
    rank = torch.cat(ranks).numpy()
    targets_np = targets.numpy()

    def summary(where):
        count = int(where.sum())
        if not count:
            return {"segments": 0, "top1": None, "top10": None}
        return {"segments": count, "top1": round(100 * float((rank[where] < 1).mean()), 2),
                "top10": round(100 * float((rank[where] < 10).mean()), 2)}

    everything = np.ones(len(rank), bool)
    result = summary(everything)
    result["code_norm"] = round(float(codes.float().norm(dim=1).mean()), 4)
    result["target_norm"] = round(float(embeddings[targets].float().norm(dim=1).mean()), 4)
    if seen is not None:
        is_seen = np.isin(targets_np, np.fromiter(seen, np.int64, len(seen)))
        for name, where in (("seen", is_seen), ("unseen", ~is_seen)):
            part = summary(where)
            result[f"top1_{name}"], result[f"top10_{name}"] = part["top1"], part["top10"]
        result["seen_share"] = round(100 * float(is_seen.mean()), 2)
    if temperature is not None:
        result["soft_top_mass"] = soft_top_mass(codes, embeddings, temperature)
        result["soft_embedding"] = soft_embedding_stats(codes, targets, embeddings, temperature, seen, pieces)
    if voices is not None:
        result["per_voice"] = {v: summary(voices == v) for v in sorted(set(voices.tolist()))}
    return result


def evaluate_codes(model, feature_extractor, tokenizer, splits: dict, train_rows=None, audio_cache_dir=None,
                   num_workers=None) -> dict:
    """{split: accuracy dict} for every split of `splits` ({name: rows})."""
    seen = seen_pieces(tokenizer, train_rows) if train_rows is not None else None
    candidates = word_initial_ids(tokenizer)
    embeddings = getattr(model, "bert", model).embeddings.word_embeddings.weight.detach().float().cpu()
    results = {}
    for name, rows in splits.items():
        codes, targets, voices = encode_segments(model, feature_extractor, tokenizer, rows, audio_cache_dir,
                                                 num_workers=num_workers)
        results[name] = code_accuracy(codes, targets, embeddings, candidates, seen, voices,
                                      temperature=getattr(model.config, "alignment_temperature", None),
                                      pieces=getattr(model.config, "soft_word_embedding_pieces", None))
    return results


def write_codes_json(path, results: dict) -> dict:
    """Merge `results` ({split: ...}) into the JSON file at `path`; returns the whole file's content."""
    path = Path(path)
    content = json.loads(path.read_text()) if path.exists() else {}
    content.update(results)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2) + "\n")
    return content


def markdown(results: dict) -> str:
    def cell(value):
        return "-" if value is None else f"{value:.1f}"

    voices = sorted({v for r in results.values() for v in r.get("per_voice", {})})
    header = ["split", "segments", "top-1", "top-10", "top-1 seen", "top-1 unseen", "seen share", "code norm",
              "target norm"] + [f"top-1 {v}" for v in voices]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for split, r in results.items():
        cells = [split, str(r["segments"]), cell(r["top1"]), cell(r["top10"]), cell(r.get("top1_seen")),
                 cell(r.get("top1_unseen")), cell(r.get("seen_share")), f"{r['code_norm']:.3f}",
                 f"{r['target_norm']:.3f}"]
        cells += [cell(r.get("per_voice", {}).get(v, {}).get("top1")) for v in voices]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def load_model(path):
    """Any SpeechBERT checkpoint (pre-training or QA) as its base `SpeechBertModel`, with its feature extractor."""
    from speechbert import SpeechBertFeatureExtractor, SpeechBertModel

    from .models import load_speechbert_config

    config = load_speechbert_config("--model", path)
    model = SpeechBertModel.from_pretrained(path, config=config, add_pooling_layer=False)
    return model, SpeechBertFeatureExtractor(**config.feature_extractor_kwargs())


def main(argv=None):

    from .data import load_corpus
    from .models import check_model_reference, load_tokenizer

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a SpeechBERT checkpoint folder")
    parser.add_argument("--dataset", required=True, help="'embedded', a save_to_disk folder or record shards")
    parser.add_argument("--split", nargs="+", default=["validation"], help="splits to evaluate")
    parser.add_argument("--train_split", default="train", help="the step-1 training split that defines 'seen'")
    parser.add_argument("--output", default=None, help="JSON file to merge into (default: MODEL/codes.json)")
    parser.add_argument("--audio_cache_dir", default="outputs/cache/audio")
    parser.add_argument("--max_paragraphs", type=positive_int, default=None,
                        help="evaluate only this many passages a split")
    parser.add_argument("--speech", nargs="+", default=[],
                        help="also evaluate these evaluation speech folders (python -m sqa_data.augment voices "
                             "--evaluation), each as a split named after its folder")
    parser.add_argument("--num_workers", type=positive_int, default=None, help="threads preparing the audio and frames")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    try:
        check_model_reference("--model", args.model)
    except ValueError as error:
        raise SystemExit(str(error)) from None

    corpus = load_corpus(args.dataset)
    for split in args.split + [args.train_split]:
        if split not in corpus:
            raise SystemExit(f"dataset {args.dataset!r} has no split {split!r} (it has {sorted(corpus)})")
    from sqa_data.augment import read_step1_rows

    sources = {split: corpus[split] for split in args.split}
    for folder in args.speech:
        name = Path(folder).resolve().name
        if name in sources:
            raise SystemExit(f"--speech {folder}: a split named {name!r} is already evaluated")
        sources[name] = read_step1_rows(folder, evaluation=True)
    model, feature_extractor = load_model(args.model)
    tokenizer = load_tokenizer(args.model)
    splits = {}
    for split, source in sources.items():
        rows, paragraphs = [], set()
        for row in source:
            if args.max_paragraphs is None or len(paragraphs) < args.max_paragraphs or row["paragraph_id"] in paragraphs:
                paragraphs.add(row["paragraph_id"])
                rows.append(row)
        splits[split] = rows
    results = evaluate_codes(model, feature_extractor, tokenizer, splits, corpus[args.train_split],
                             args.audio_cache_dir, num_workers=args.num_workers)
    write_codes_json(args.output or Path(args.model) / "codes.json", results)
    print(markdown(results))
    return results


if __name__ == "__main__":
    main()
