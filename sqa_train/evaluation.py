"""Scores, tables and plots for spoken QA systems, through the repository's `evaluate` module
(`metrics/spoken_squad_qa`)."""

import json
from pathlib import Path

from .data import spoken_answers

METRIC_PATH = str(Path(__file__).resolve().parents[1] / "metrics" / "spoken_squad_qa")
SYSTEM_NAMES = {"text": "text upper bound", "cascade": "cascade (ASR + text QA)", "speechbert": "SpeechBERT",
                "ensemble": "ensemble", "oracle": "oracle codes (BERT's word embeddings at the segments)",
                "speechbert_segmenter": "SpeechBERT, own word segmenter (no ASR)"}
SYSTEM_ORDER = ("text", "cascade", "speechbert", "speechbert_segmenter", "ensemble", "oracle")


def metric_module():
    """The metric's Python module itself, for its checks (`check_wer_bucket_edges`) before any `evaluate` call."""
    import importlib.util
    import sys

    name = "spoken_squad_qa_module"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(METRIC_PATH) / "spoken_squad_qa.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


def load_metric():
    import evaluate

    return evaluate.load(METRIC_PATH)


def references(rows) -> list[dict]:
    return [{
        "id": row["id"],
        "answers": {"text": spoken_answers(row), "start_time": list(row["answers"]["start_time"]),
                    "end_time": list(row["answers"]["end_time"])},
        "wer": float(row["wer"]),
        "has_asr_error": bool(row["answer_has_asr_error"]),
    } for row in rows]


def score(metric, rows, predictions: dict[int, dict], wer_bucket_edges, per_voice=True) -> dict:
    """The metric module's result, plus `per_voice` (the overall figures on each voice's questions) when the rows have
    more than one voice: how a system does on a voice it was not trained on (`--exclude_train_voices`)."""
    preds = [{"id": rows[e]["id"], "prediction_text": p["prediction_text"], "start_time": p["start_time"],
              "end_time": p["end_time"]} for e, p in sorted(predictions.items())]
    scored_ids = {p["id"] for p in preds}
    refs = [r for r in references(rows) if r["id"] in scored_ids]
    result = metric.compute(predictions=preds, references=refs, wer_bucket_edges=list(wer_bucket_edges))
    voices = {rows[e].get("voice") or "" for e in predictions}
    if per_voice and len(voices) > 1:
        result["per_voice"] = {}
        for voice in sorted(voices):
            chosen = {e: p for e, p in predictions.items() if (rows[e].get("voice") or "") == voice}
            result["per_voice"][voice or "unknown"] = score(metric, rows, chosen, wer_bucket_edges,
                                                            per_voice=False)["overall"]
    return result


def voice_table(metrics: dict[str, dict], split: str) -> str:
    """F1 / AOS of every system on each voice's questions."""
    systems = [s for s in SYSTEM_ORDER if s in metrics]
    if not systems or "per_voice" not in metrics[systems[0]]:
        return ""
    voices = list(metrics[systems[0]]["per_voice"])
    header = ["system"] + [f"F1 / AOS, {v} (n={metrics[systems[0]]['per_voice'][v]['count']})" for v in voices]
    lines = [f"**{split}, by voice**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for system in systems:
        cells = [SYSTEM_NAMES[system]]
        for v in voices:
            o = metrics[system]["per_voice"][v]
            cells.append(f"{_cell(o['f1'])} / {_cell(o['aos'])}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value):
    return "-" if value is None else f"{value:.1f}"


def markdown_table(metrics: dict[str, dict], split: str) -> str:
    """One row per system: EM / F1 / AOS overall, F1 and AOS per WER bucket, and on answers with ASR errors. A bucket
    with no question (and the ASR-error column when no answer has one) is left out, named under the table: a split
    without audio (Spoken SQuAD's transcripts) has neither, and neither time-based score (AOS, FF1, shown "-")."""
    systems = [s for s in SYSTEM_ORDER if s in metrics]
    if not systems:
        return ""
    counts = metrics[systems[0]]["wer_buckets"]
    buckets = [b for b in counts if counts[b]["count"]]
    errors = metrics[systems[0]]["answers_with_asr_errors"]["count"]
    header = ["system", "EM", "F1", "AOS", "FF1"]
    header += [f"F1 / AOS, WER {b} (n={counts[b]['count']})" for b in buckets]
    if errors:
        header += [f"F1 / AOS, answers with ASR errors (n={errors})"]
    lines = [f"**{split}** ({metrics[systems[0]]['overall']['count']} questions)", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for system in systems:
        m = metrics[system]
        o = m["overall"]
        cells = [SYSTEM_NAMES[system], _cell(o["exact_match"]), _cell(o["f1"]), _cell(o["aos"]), _cell(o["frame_f1"])]
        cells += [f"{_cell(m['wer_buckets'][b]['f1'])} / {_cell(m['wer_buckets'][b]['aos'])}" for b in buckets]
        if errors:
            e = m["answers_with_asr_errors"]
            cells.append(f"{_cell(e['f1'])} / {_cell(e['aos'])}")
        lines.append("| " + " | ".join(cells) + " |")
    empty = [f"WER {b}" for b in counts if not counts[b]["count"]] + ([] if errors else ["answers with ASR errors"])
    if empty:
        lines += ["", f"No questions in: {', '.join(empty)} (columns left out)."]
    return "\n".join(lines)


def plot_buckets(metrics: dict[str, dict], path, split: str):
    """F1 and AOS against the passage-WER bucket, one line per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = [s for s in SYSTEM_ORDER if s in metrics]
    buckets = list(metrics[systems[0]]["wer_buckets"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, title in ((axes[0], "f1", "F1"), (axes[1], "aos", "AOS")):
        for system in systems:
            values = [metrics[system]["wer_buckets"][b][key] for b in buckets]
            ax.plot(range(len(buckets)), [float("nan") if v is None else v for v in values], marker="o",
                    label=SYSTEM_NAMES[system])
        ax.set_xticks(range(len(buckets)))
        counts = [metrics[systems[0]]["wer_buckets"][b]["count"] for b in buckets]
        ax.set_xticklabels([f"{b}\nn={n}" for b, n in zip(buckets, counts)], fontsize=8)
        ax.set_xlabel("passage WER")
        ax.set_ylabel(title)
        ax.set_title(f"{title} by WER bucket ({split})")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_json(path, data):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
