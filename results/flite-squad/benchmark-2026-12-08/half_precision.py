"""How well float16 and bfloat16 hold the weights a shipped checkpoint stores in half precision: every tensor of a
safetensors file rounded to each, then the relative error of the whole file (||w - half(w)|| / ||w||), the largest
relative error of one tensor, and the share of nonzero values that become zero or subnormal (float16 keeps 10
mantissa bits but flushes below 6e-8; bfloat16 keeps float32's range with 7 bits).

Usage:
    python results/flite-squad/benchmark-2026-12-08/half_precision.py FILE.safetensors [...]
"""

import sys

import torch
from safetensors.torch import load_file


def measure(path) -> dict:
    tensors = {k: v.float() for k, v in load_file(path).items() if v.is_floating_point()}
    total = sum(float(v.pow(2).sum()) for v in tensors.values()) ** 0.5
    result = {"tensors": len(tensors), "values": sum(v.numel() for v in tensors.values())}
    for name, dtype in (("float16", torch.float16), ("bfloat16", torch.bfloat16)):
        error, worst, lost, nonzero = 0.0, 0.0, 0, 0
        for value in tensors.values():
            rounded = value.to(dtype).float()
            error += float((value - rounded).pow(2).sum())
            norm = float(value.norm())
            if norm:
                worst = max(worst, float((value - rounded).norm()) / norm)
            mask = value != 0
            nonzero += int(mask.sum())
            tiny = rounded.abs() < torch.finfo(dtype).tiny
            lost += int((mask & tiny).sum())
        result[name] = {"relative_error": error ** 0.5 / total, "worst_tensor": worst,
                        "zero_or_subnormal_share": lost / max(nonzero, 1)}
    return result


if __name__ == "__main__":
    for path in sys.argv[1:]:
        found = measure(path)
        print(f"{path}: {found['tensors']} tensors, {found['values']:,} values")
        for name in ("float16", "bfloat16"):
            r = found[name]
            print(f"  {name:9s} relative error {r['relative_error']:.2e}, worst tensor {r['worst_tensor']:.2e}, "
                  f"zero or subnormal {r['zero_or_subnormal_share']:.2e} of nonzero values")
