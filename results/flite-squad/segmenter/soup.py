"""Average the weights of SpeechBERT checkpoints fine-tuned from one start ("model soup", WiSE-FT; issue 13,
2026-12-06). The QA model trained at ASR segments and the same model trained one more epoch at the word segmenter's
segments share every weight's origin, so their weighted mean is a model between the two; evaluating it at the
segmenter's segments asks whether such a point answers better than either end, at no inference cost.

The first model's folder (config, tokenizer, Hub code) is copied and its `model.safetensors` replaced by the mean.
Every model must hold the same tensor names and shapes; integer tensors (none in SpeechBERT) must agree exactly.
Run from the repository root:

    .venv/bin/python results/flite-squad/segmenter/soup.py --models outputs/benchmark/no_asr_ft/speechbert_segmenter \
        outputs/benchmark/no_asr/model --weights 0.5 0.5 --output_dir outputs/segmenter/soup_ft_asr05
"""

import argparse
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", required=True, help="checkpoint folders (the first gives the files)")
    parser.add_argument("--weights", nargs="+", type=float, required=True, help="one weight per model, summing to 1")
    parser.add_argument("--output_dir", required=True)
    args = parser.parse_args(argv)
    if len(args.weights) != len(args.models):
        raise SystemExit(f"--weights: {len(args.weights)} weights for {len(args.models)} models")
    if any(w < 0 for w in args.weights) or abs(sum(args.weights) - 1) > 1e-6:
        raise SystemExit(f"--weights must be non-negative and sum to 1, got {args.weights}")
    paths = [Path(m) / "model.safetensors" for m in args.models]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise SystemExit(f"no model.safetensors in {missing}")
    out = Path(args.output_dir)
    if out.resolve() in [Path(m).resolve() for m in args.models]:
        raise SystemExit(f"--output_dir {out} is one of the models")

    states = [load_file(p) for p in paths]
    names = set(states[0])
    for model, state in zip(args.models[1:], states[1:]):
        if set(state) != names:
            raise SystemExit(f"{model} holds other tensors than {args.models[0]}: "
                             f"{sorted(set(state) ^ names)[:5]}...")
    mean = {}
    for name in sorted(names):
        tensors = [s[name] for s in states]
        if any(t.shape != tensors[0].shape for t in tensors):
            raise SystemExit(f"{name}: shapes {[tuple(t.shape) for t in tensors]} differ")
        if not tensors[0].is_floating_point():
            if any(not torch.equal(t, tensors[0]) for t in tensors):
                raise SystemExit(f"{name}: integer tensor differs between models")
            mean[name] = tensors[0]
            continue
        mean[name] = sum(w * t.double() for w, t in zip(args.weights, tensors)).to(tensors[0].dtype).contiguous()

    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(args.models[0], out, ignore=shutil.ignore_patterns("checkpoint-*", "eval_logits", "DONE",
                                                                       "settings.json", "training_args.bin"))
    save_file(mean, out / "model.safetensors", metadata={"format": "pt"})
    (out / "soup.json").write_text(json.dumps({"models": args.models, "weights": args.weights}, indent=1) + "\n")
    changed = sum(not torch.equal(states[0][n], states[-1][n]) for n in names)
    print(f"{out}: mean of {len(states)} models ({len(names)} tensors, {changed} differ between the first and last)")


if __name__ == "__main__":
    main()
