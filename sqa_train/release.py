"""Release a fine-tuned SpeechBERT to the Hub: the checkpoint folder (weights, config, processor, Hub code, pipeline,
endpoint handler), then a model card with its metrics, written after the model push so the push cannot overwrite it.

Usage:
    python -m sqa_train.release --checkpoint outputs/sqa/speechbert --repo_id your-org/speechbert-sqa \
        --metrics outputs/sqa/metrics.json [--plot outputs/sqa/wer_buckets_test.png] [--private] [--system NAME]
    python -m sqa_train.release --checkpoint checkpoints/NAME --repo_id your-org/speechbert-sqa

A shipped checkpoint (`checkpoints/NAME`, with its `shipped.json`) is pushed unchanged, card included, in one commit,
after its files are checked against its manifest.

The card shows the test metrics of the run_sqa.py system the checkpoint is: `--system`, or the checkpoint folder's
name (run_sqa.py saves each system in OUTPUT_DIR/SYSTEM: `outputs/sqa/speechbert_segmenter` is carded with the
`speechbert_segmenter` figures), or `speechbert`; a system the metrics lack is an error before anything is pushed.

`run_sqa.py --push_to_hub --hub_model_id your-org/speechbert-sqa` calls the same code after training. The token comes
from `--token`, `HF_TOKEN` or `hf auth login`; `HF_ENDPOINT` points at another Hub-compatible server.
"""

import argparse
import json
from pathlib import Path

from huggingface_hub import CommitOperationAdd, EvalResult, HfApi, ModelCard, ModelCardData

CITATION = """@inproceedings{chuang2020speechbert,
  title     = {{SpeechBERT}: An Audio-and-text Jointly Learned Language Model for End-to-end Spoken Question Answering},
  author    = {Chuang, Yung-Sung and Liu, Chi-Liang and Lee, Hung-yi and Lee, Lin-shan},
  booktitle = {Proc. Interspeech 2020},
  year      = {2020},
  note      = {arXiv:1910.11559}
}"""
# What a release takes from a checkpoint folder: its top-level weights, configs, tokenizer and Hub code, and nothing
# else a training run leaves there (checkpoint-N/, eval_logits/, optimizer.pt, a stray .env): an allow-list.
ALLOW = ["*.safetensors", "*.json", "*.py", "*.txt", "*.model"]
IGNORE = ["*/*", "trainer_state.json", "settings.json", "shipped.json", "training_args.bin", "README.md", "DONE"]
METRIC_NAMES = {"exact_match": "EM", "f1": "F1", "aos": "AOS", "frame_f1": "frame F1"}


def eval_results(metrics: dict, dataset_name: str, split: str = "test") -> list[EvalResult]:
    """model-index entries: EM, F1, AOS and frame F1 overall, F1 and AOS per WER bucket and on answers with ASR
    errors."""
    def result(metric, value, name):
        return EvalResult(task_type="question-answering", task_name="Spoken question answering",
                          dataset_type="spoken-squad-flite", dataset_name=dataset_name, dataset_split=split,
                          metric_type=metric, metric_value=round(value, 2), metric_name=name)

    results = [result(k, metrics["overall"][k], METRIC_NAMES[k]) for k in METRIC_NAMES
               if metrics["overall"].get(k) is not None]
    for bucket, values in metrics["wer_buckets"].items():
        for key in ("f1", "aos"):
            if values.get(key) is not None:
                results.append(result(key, values[key], f"{METRIC_NAMES[key]}, passage WER {bucket} "
                                                        f"(n={values['count']})"))
    errors = metrics["answers_with_asr_errors"]
    for key in ("f1", "aos"):
        if errors.get(key) is not None:
            results.append(result(key, errors[key], f"{METRIC_NAMES[key]}, answers with ASR errors "
                                                    f"(n={errors['count']})"))
    return results


# What each SpeechBERT system of run_sqa.py reads, for the card.
SYSTEM_SEGMENTS = {
    "speechbert": "word segments from pocketsphinx ASR",
    "speechbert_segmenter": "word segments from its own word segmenter (no ASR)",
}


def check_system_metrics(results, system: str) -> None:
    """A `ValueError` naming the first field of a system's test metrics the card cannot show: the card is built from
    `overall` (with `count`), `wer_buckets` (each with `count`) and `answers_with_asr_errors`, whose figures must be
    numbers or null. Checked before anything is pushed (a bad field used to fail after the weights were up)."""
    def figures(where, values):
        if not isinstance(values, dict):
            raise ValueError(f"metrics test.{system}.{where} must be an object, got {type(values).__name__}")
        count = values.get("count")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"metrics test.{system}.{where}.count must be a non-negative integer, got {count!r}")
        for key in METRIC_NAMES:
            value = values.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ValueError(f"metrics test.{system}.{where}.{key} must be a number or null, got {value!r}")

    if not isinstance(results, dict):
        raise ValueError(f"metrics test.{system} must be an object, got {type(results).__name__}")
    for key in ("overall", "wer_buckets", "answers_with_asr_errors"):
        if key not in results:
            raise ValueError(f"metrics test.{system} has no {key!r}: expected run_sqa.py's metrics.json")
    figures("overall", results["overall"])
    for key in ("exact_match", "f1", "aos"):
        if results["overall"].get(key) is None:
            raise ValueError(f"metrics test.{system}.overall.{key} is missing or null: the card states it")
    if not isinstance(results["wer_buckets"], dict):
        raise ValueError(f"metrics test.{system}.wer_buckets must be an object of buckets")
    for bucket, values in results["wer_buckets"].items():
        figures(f"wer_buckets[{bucket!r}]", values)
    figures("answers_with_asr_errors", results["answers_with_asr_errors"])


def released_system(checkpoint, metrics: dict | None, system: str | None = None) -> str | None:
    """The run_sqa.py system whose test metrics describe `checkpoint`: `system` when given, else the folder's name
    when metrics.json has a system of that name (run_sqa.py saves each system in OUTPUT_DIR/SYSTEM), else
    `speechbert`. Checked against the metrics before anything is pushed: the card must not show another model's
    numbers (a `speechbert_segmenter` folder used to be carded with the `speechbert` system's figures)."""
    if metrics is None:
        return system
    if not isinstance(metrics, dict) or not isinstance(metrics.get("test"), dict):
        raise ValueError("the metrics file has no 'test' split: expected run_sqa.py's metrics.json "  # noqa: TRY004
                         "({'test': {system: metrics}, ...})")
    tested = sorted(k for k, v in metrics["test"].items() if isinstance(v, dict) and "overall" in v)
    if system is None:
        system = Path(checkpoint).name if Path(checkpoint).name in tested else "speechbert"
    if system not in tested:
        raise ValueError(f"the metrics file has no test results for system {system!r} (it has {tested}): pass "
                         "--system to say which of them this checkpoint is")
    return system


def model_card(repo_id: str, revision: str, metrics: dict | None, plot_name: str | None,
               dataset_name: str = "Spoken SQuAD-style (flite + pocketsphinx) on SQuAD v1.1 dev",
               system: str = "speechbert", word_segmenter: bool = False) -> ModelCard:
    results = (metrics or {}).get("test", {}).get(system)
    data = ModelCardData(
        language="en", license="apache-2.0", library_name="transformers", pipeline_tag="question-answering",
        tags=["custom_code", "audio", "speech", "spoken-question-answering", "speechbert"], datasets=["squad"],
        model_name=repo_id, eval_results=eval_results(results, dataset_name) if results else None,
    )
    lines = [f"# {repo_id}", "",
             "SpeechBERT (Chuang et al., Interspeech 2020, arXiv:1910.11559) for end-to-end spoken question "
             "answering: a text question about a spoken passage, answered with a span of the audio (start and end "
             "time, and its words). The passage audio enters BERT as one embedding per spoken word segment.", "",
             "## Usage", "", "The code runs from this repository: review it, then pin the revision you reviewed.", "",
             "```python", "from transformers import pipeline", "",
             f'qa = pipeline(model="{repo_id}", trust_remote_code=True, revision="{revision}")',
             'qa("passage.wav", question="Who ruled Normandy?")',
             "# {'answer': ..., 'start': seconds, 'end': seconds, 'score': ...}", "```", "",
             ("Without `word_segments`, its own word segmenter finds the words (no ASR; the answer's words need "
              "`words=`, else only its times are given); `segmenter=\"asr\"` uses pocketsphinx instead."
              if word_segmenter else
              "Word times come from pocketsphinx when none are given (`pip install pocketsphinx`)."), ""]
    if results:
        overall = results["overall"]
        read = SYSTEM_SEGMENTS.get(system, f"run_sqa.py's {system!r} system")
        lines += ["## Results (test split)", "",
                  f"`run_sqa.py`'s `{system}` system ({read}). "
                  f"{overall['count']} questions: EM {overall['exact_match']:.1f}, F1 {overall['f1']:.1f}, "
                  f"AOS {overall['aos']:.1f}. Per passage-WER bucket:", "",
                  "| passage WER | questions | F1 | AOS |", "|---|---|---|---|"]
        for bucket, values in results["wer_buckets"].items():
            f1 = "-" if values["f1"] is None else f"{values['f1']:.1f}"
            aos = "-" if values["aos"] is None else f"{values['aos']:.1f}"
            lines.append(f"| {bucket} | {values['count']} | {f1} | {aos} |")
        lines.append("")
        if plot_name:
            lines += [f"![F1 and AOS by WER bucket]({plot_name})", ""]
    lines += ["## Citation", "", "```bibtex", CITATION, "```", ""]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))


def release(checkpoint, repo_id, metrics_path=None, plot_path=None, private=False, token=None,
            commit_message="Upload SpeechBERT", system=None) -> tuple[str, str]:
    """Push the checkpoint, then the card (with `system`'s test metrics: see `released_system`). Returns the (model
    commit, card commit) shas. Everything is checked before the first push, so a bad argument leaves no half
    release behind."""
    checkpoint = Path(checkpoint)
    if (checkpoint / "shipped.json").is_file():
        return release_shipped(checkpoint, repo_id, metrics_path, plot_path, private, token, commit_message, system)
    for required in ("config.json", "modeling_speechbert.py", "pipeline_speechbert.py", "processor_config.json"):
        if not (checkpoint / required).exists():
            raise FileNotFoundError(f"{checkpoint} lacks {required}: save the model and its processor there first")
    if plot_path and not Path(plot_path).is_file():  # found missing only after the model push, before
        raise FileNotFoundError(f"--plot {plot_path}: no such file")
    metrics = None
    if metrics_path:
        try:
            metrics = json.loads(Path(metrics_path).read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"--metrics {metrics_path} is not JSON ({error}): expected run_sqa.py's metrics.json")
    system = released_system(checkpoint, metrics, system)
    word_segmenter = bool(json.loads((checkpoint / "config.json").read_text()).get("word_segmenter"))
    if metrics is not None:
        check_system_metrics(metrics["test"][system], system)
    # The whole card is built once before the first push (the revision it names is known only after it).
    model_card(repo_id, "0" * 40, metrics, Path(plot_path).name if plot_path else None, system=system or "speechbert",
               word_segmenter=word_segmenter)
    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    model_commit = api.upload_folder(repo_id=repo_id, folder_path=checkpoint, commit_message=commit_message,
                                     allow_patterns=ALLOW, ignore_patterns=IGNORE)
    revision = model_commit.oid
    operations = []
    plot_name = None
    if plot_path:
        plot_name = Path(plot_path).name
        operations.append(CommitOperationAdd(path_in_repo=plot_name, path_or_fileobj=str(plot_path)))
    card = model_card(repo_id, revision, metrics, plot_name, system=system or "speechbert",
                      word_segmenter=word_segmenter)
    operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(card).encode()))
    card_commit = api.create_commit(repo_id=repo_id, operations=operations, commit_message="Add model card")
    return revision, card_commit.oid


def release_shipped(checkpoint: Path, repo_id, metrics_path=None, plot_path=None, private=False, token=None,
                    commit_message="Upload SpeechBERT", system=None) -> tuple[str, str]:
    """Push a shipped checkpoint folder (`checkpoints/NAME`, `sqa_train.shipped`) unchanged, its model card and
    manifest included, in one commit, after checking every file against its manifest. Its card already holds its
    figures: `--metrics`, `--plot` and `--system` are refused rather than ignored."""
    from .shipped import verify

    given = [name for name, value in (("--metrics", metrics_path), ("--plot", plot_path), ("--system", system))
             if value]
    if given:
        raise ValueError(f"{checkpoint} is a shipped checkpoint, released as it is with its own card: drop "
                         f"{' and '.join(given)}")
    manifest = verify(checkpoint)
    if manifest["weights"] != "half" or not (checkpoint / "config.json").is_file():
        raise ValueError(f"{checkpoint} ships the step {manifest['stage']} to restart the recipe from, not a model "
                         "to load: release a checkpoint with complete weights (shipped with --weights half)")
    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    commit = api.upload_folder(repo_id=repo_id, folder_path=checkpoint, commit_message=commit_message)
    return commit.oid, commit.oid


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--checkpoint", required=True, help="folder with the model, processor and Hub code")
    parser.add_argument("--repo_id", required=True, help="namespace/name on the Hub")
    parser.add_argument("--metrics", help="run_sqa.py's metrics.json, for the card's model-index")
    parser.add_argument("--plot", help="a PNG to show in the card (e.g. wer_buckets_test.png)")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--token", help="Hub token (default: HF_TOKEN or the stored login)")
    parser.add_argument("--system", default=None,
                        help="the run_sqa.py system in --metrics this checkpoint is (default: the checkpoint folder's "
                             "name when the metrics have it, e.g. speechbert_segmenter, else speechbert)")
    args = parser.parse_args(argv)
    try:
        model_sha, card_sha = release(args.checkpoint, args.repo_id, args.metrics, args.plot, args.private,
                                      args.token, system=args.system)
    except (FileNotFoundError, ValueError) as error:
        parser.exit(2, f"error: {error}\n")
    print(json.dumps({"repo_id": args.repo_id, "model_revision": model_sha, "card_revision": card_sha}))


if __name__ == "__main__":
    main()
