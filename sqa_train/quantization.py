"""Dynamic int8 quantisation for CPU inference, shared by run_sqa.py (--quantize int8) and the benchmarks."""

import warnings

import torch


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 quantisation of Linear and RNN layers (weights int8, activations quantised on the fly), for CPU
    inference. torch.ao's eager API is deprecated in favour of torchao but still ships with torch."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear, torch.nn.GRU, torch.nn.LSTM},
                                                      dtype=torch.qint8)
