"""The audio encoder's and decoder's RNN kernels: word segments packed into one `PackedSequence`, and a packed GRU/LSTM
run with fewer kernels per step than `nn.GRU`'s CPU path (a hand-written GRU backward; see `_PackedGRUDirection`).
The step counts behind these choices are measured in `benchmarks/RESULTS.md` (`bench_train_step.py`).
"""

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import PackedSequence

RNNS = {"gru": nn.GRU, "lstm": nn.LSTM}


class _PackedGRUDirection(torch.autograd.Function):
    """One direction of one GRU layer over a packed batch, from its input projections `gi` (rows, 3H) = W_ih x + b_ih
    (gates r, z, n in PyTorch's order), with a hand-written backward. Returns `(final, outputs)`: the last state of
    every sequence (N, H) in packed (length-sorted) order, and the packed outputs (rows, H) or None.

    The autograd version of the same loop records about ten nodes per time step; their backward ran some 25 kernels a
    step, a third of them zero-fills and copies for the gradients of slices. Here a step runs five kernels forward and
    about ten backward (fused sigmoid and tanh derivatives, the recurrent and weight products). Every temporary is one
    step's size, as in the autograd loop (passage-sized buffers were slower, each first write faulting in fresh pages);
    only the input gradient, which is returned whole, is written into one buffer step by step.
    """

    @staticmethod
    def forward(ctx, gi, w_hh, b_hh, batch_sizes, reverse, need_output):
        hidden, first, count = w_hh.shape[1], batch_sizes[0], len(batch_sizes)
        offsets = [0]
        for size in batch_sizes[:-1]:
            offsets.append(offsets[-1] + size)
        gh, rz, n, h, h_prev = [None] * count, [None] * count, [None] * count, [None] * count, [None] * count
        w_t = w_hh.t()
        state = gi.new_zeros(first if not reverse else 0, hidden)
        for t in range(count - 1, -1, -1) if reverse else range(count):
            size, start = batch_sizes[t], offsets[t]
            gi_t = gi[start : start + size]
            if reverse and size > state.shape[0]:  # sequences whose last step is t start here, from zero
                state = torch.cat([state, gi.new_zeros(size - state.shape[0], hidden)])
            hp = h_prev[t] = state[:size]
            gh[t] = torch.mm(hp, w_t) if b_hh is None else torch.addmm(b_hh, hp, w_t)
            rz[t] = torch.add(gi_t[:, : 2 * hidden], gh[t][:, : 2 * hidden]).sigmoid_()
            n[t] = torch.addcmul(gi_t[:, 2 * hidden :], rz[t][:, :hidden], gh[t][:, 2 * hidden :]).tanh_()
            state = h[t] = torch.lerp(n[t], hp, rz[t][:, hidden:])  # (1 - z) * n + z * h
        if reverse:
            final = state
        else:  # sequences [batch_sizes[t + 1], batch_sizes[t]) end at step t
            final = torch.cat([h[t][(batch_sizes[t + 1] if t + 1 < count else 0) :] for t in range(count - 1, -1, -1)])
        ctx.save_for_backward(w_hh)
        ctx.steps = gh, rz, n, h_prev
        ctx.batch_sizes, ctx.offsets, ctx.reverse, ctx.has_bias = batch_sizes, offsets, reverse, b_hh is not None
        ctx.set_materialize_grads(False)
        return final, torch.cat(h) if need_output else None

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_final, grad_out):
        (w_hh,) = ctx.saved_tensors
        gh, rz, n, h_prev = ctx.steps
        batch_sizes, offsets, reverse = ctx.batch_sizes, ctx.offsets, ctx.reverse
        hidden, count = w_hh.shape[1], len(batch_sizes)
        grad_gi = w_hh.new_empty(offsets[-1] + batch_sizes[-1], 3 * hidden)  # d loss / d (W_ih x + b_ih)
        grad_w = w_hh.new_zeros(w_hh.shape)
        grad_b = w_hh.new_zeros(w_hh.shape[0]) if ctx.has_bias else None
        sigmoid_backward, tanh_backward = torch.ops.aten.sigmoid_backward, torch.ops.aten.tanh_backward
        carry = None  # d loss / d the state the later step started from
        for t in range(count) if reverse else range(count - 1, -1, -1):
            size, start = batch_sizes[t], offsets[t]
            if reverse:
                dh = grad_final if t == 0 else carry
                dh = dh if dh is not None else w_hh.new_zeros(size, hidden)
            else:  # sequences [batch_sizes[t + 1], size) end at step t: their final state's gradient joins here
                ended = batch_sizes[t + 1] if t + 1 < count else 0
                tail = (grad_final[ended:size] if grad_final is not None
                        else w_hh.new_zeros(size - ended, hidden))
                dh = tail if carry is None else torch.cat([carry, tail])
            if grad_out is not None:
                dh = dh + grad_out[start : start + size]
            r, z, hp = rz[t][:, :hidden], rz[t][:, hidden:], h_prev[t]
            dh_z = dh * z  # the state's direct path: h = n + z * (h_prev - n)
            g = torch.empty_like(gh[t])  # d loss / d (W_hh h + b_hh)
            gi_t = grad_gi[start : start + size]
            dn = tanh_backward(dh - dh_z, n[t], grad_input=gi_t[:, 2 * hidden :])  # through n = tanh(...)
            torch.mul(dn, r, out=g[:, 2 * hidden :])
            sigmoid_backward(dn * gh[t][:, 2 * hidden :], r, grad_input=g[:, :hidden])  # reset gate
            sigmoid_backward(dh * (hp - n[t]), z, grad_input=g[:, hidden : 2 * hidden])  # update gate
            gi_t[:, : 2 * hidden] = g[:, : 2 * hidden]
            grad_w.addmm_(g.t(), hp)
            if grad_b is not None:
                grad_b += g.sum(0)
            previous = t + 1 if reverse else t - 1  # the step whose state this one started from
            if 0 <= previous < count:
                kept = min(size, batch_sizes[previous])
                carry = torch.addmm(dh_z[:kept], g[:kept], w_hh)
        return grad_gi, grad_w if ctx.needs_input_grad[1] else None, grad_b, None, None, None


def _rnn_direction(inputs, batch_sizes, w_hh, b_hh, reverse, lstm, need_output):
    """One direction of one layer over a packed batch whose input projections (`W_ih x + b_ih`, gates in PyTorch's
    order) are already computed. `inputs` is split per time step, so its gradient is assembled by one concatenation."""
    hidden = w_hh.shape[1]
    chunks = torch.split(inputs, batch_sizes)
    h = inputs.new_zeros(0 if reverse else batch_sizes[0], hidden)
    c = h.clone() if lstm else None
    finished_h, outputs = [], []
    for t in range(len(batch_sizes) - 1, -1, -1) if reverse else range(len(batch_sizes)):
        size = batch_sizes[t]
        if reverse and size > h.shape[0]:  # sequences whose last step is t start here, from zero states
            h = torch.cat([h, inputs.new_zeros(size - h.shape[0], hidden)])
            c = torch.cat([c, inputs.new_zeros(size - c.shape[0], hidden)]) if lstm else None
        elif not reverse and size < h.shape[0]:  # sequences that ended at t - 1 keep their state
            finished_h.append(h[size:])
            h = h[:size]
            c = c[:size] if lstm else None
        if lstm:
            i, f, g, o = (chunks[t] + F.linear(h, w_hh, b_hh)).chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        else:
            from_input, from_hidden = chunks[t], F.linear(h, w_hh, b_hh)
            rz = torch.sigmoid(from_input[:, : 2 * hidden] + from_hidden[:, : 2 * hidden])
            r, z = rz.chunk(2, 1)
            n = torch.tanh(torch.addcmul(from_input[:, 2 * hidden :], r, from_hidden[:, 2 * hidden :]))
            h = torch.lerp(n, h, z)  # (1 - z) * n + z * h
        if need_output:
            outputs.append(h)
    if reverse:
        final = h
        outputs = outputs[::-1]
    else:
        finished_h.append(h)
        final = torch.cat(finished_h[::-1])
    return final, torch.cat(outputs) if need_output else None


def run_packed_rnn(rnn: nn.RNNBase, packed: PackedSequence, need_output: bool = True, source=None):
    """`rnn(packed)` for a GRU or LSTM, returning `(output, h_n)` (`output` a PackedSequence, or None when not
    needed; `h_n` of shape (layers * directions, N, H) in the caller's order).

    On CPU with gradients, PyTorch's packed RNN backpropagates each time step's slice by filling a zero tensor the size
    of the whole packed input, which makes the backward quadratic in the number of steps (benchmarks/RESULTS.md, training step). This loop computes the same values with the same
    weights and splits the input per step instead. Without gradients, or on GPU (cuDNN), the native kernel runs.

    With `source` (M, input_size), `packed.data` holds row indices into it instead of the rows (input row i is
    `source[packed.data[i]]`): the loop then multiplies the input weights with the M source rows once, not with every
    step's copy (the pre-training decoder feeds a segment's code at each of its steps).
    """
    data = packed.data if source is None else source
    needs_grad = torch.is_grad_enabled() and (data.requires_grad or any(p.requires_grad for p in rnn.parameters()))
    if data.device.type != "cpu" or not needs_grad or getattr(rnn, "proj_size", 0):
        if source is not None:
            packed = PackedSequence(source[packed.data], packed.batch_sizes, packed.sorted_indices,
                                    packed.unsorted_indices)
        output, state = rnn(packed)
        return (output if need_output else None), state[0] if isinstance(state, tuple) else state
    lstm = isinstance(rnn, nn.LSTM)
    batch_sizes = packed.batch_sizes.tolist()
    directions = 2 if rnn.bidirectional else 1
    x, finals = (packed.data, []) if source is None else (source, [])
    for layer in range(rnn.num_layers):
        outputs, keep_output = [], need_output or layer < rnn.num_layers - 1  # the next layer reads the outputs
        for direction in range(directions):
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            projected = F.linear(x, getattr(rnn, "weight_ih" + suffix), getattr(rnn, "bias_ih" + suffix, None))
            if layer == 0 and source is not None:
                projected = projected[packed.data]  # (rows, gates * H): each row's source projection
            w_hh, b_hh = getattr(rnn, "weight_hh" + suffix), getattr(rnn, "bias_hh" + suffix, None)
            if not lstm and projected.dtype == w_hh.dtype:  # autocast gives bf16 projections: the autograd loop casts
                final, output = _PackedGRUDirection.apply(
                    projected, w_hh, b_hh, batch_sizes, bool(direction), keep_output)
            else:
                final, output = _rnn_direction(
                    projected, batch_sizes, w_hh, b_hh, reverse=bool(direction), lstm=lstm, need_output=keep_output)
            finals.append(final)
            outputs.append(output)
        if keep_output:
            x = torch.cat(outputs, 1) if directions == 2 else outputs[0]
            if layer < rnn.num_layers - 1 and rnn.dropout:
                x = F.dropout(x, rnn.dropout, rnn.training)
    h_n = torch.stack(finals)  # (L * D, N, H) in packed (length-sorted) order
    if packed.unsorted_indices is not None:
        h_n = h_n.index_select(1, packed.unsorted_indices)
    if not need_output:
        return None, h_n
    return PackedSequence(x, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices), h_n


def _packed_positions(batch_sizes: torch.Tensor, device) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row of packed data (time-major, `batch_sizes` rows per step): its time step and its position in the
    length-sorted batch, both (rows,) on `device`."""
    steps = torch.repeat_interleave(torch.arange(len(batch_sizes)), batch_sizes)
    offsets = torch.cumsum(batch_sizes, 0) - batch_sizes
    positions = torch.arange(len(steps)) - offsets[steps]
    return steps.to(device), positions.to(device)


def pad_packed(packed: PackedSequence, total_length: int) -> torch.Tensor:
    """`pad_packed_sequence(packed, batch_first=True, total_length=...)[0]` as one indexed write. PyTorch's version
    copies step by step into slices of the output, and its backward then copies the whole gradient once per step,
    quadratic in the steps."""
    steps, rows = _packed_positions(packed.batch_sizes, packed.data.device)
    if packed.sorted_indices is not None:
        rows = packed.sorted_indices[rows]
    padded = packed.data.new_zeros(int(packed.batch_sizes[0]), total_length, *packed.data.shape[1:])
    return padded.index_put((rows, steps), packed.data)


def pack_frames(
    features: torch.Tensor, lengths: torch.Tensor, k: int, rows: torch.Tensor | None = None
) -> PackedSequence:
    """The segments `rows` of `features`, k consecutive frames concatenated into one RNN step (frames past T are
    zeros), as a PackedSequence: one gather of the frames the RNN reads, instead of copying the padded (N, T, F)
    block three times (selection, padding to a multiple of k, `pack_padded_sequence`).

    features: (M, T, F); lengths: (N,) frames per segment, 1 <= lengths <= T; rows: (N,) which of the M segments
    (default: all, N = M)."""
    num_frames, size = features.shape[1], features.shape[2]
    steps = torch.div(lengths + k - 1, k, rounding_mode="floor")  # (N,) RNN steps per segment
    sorted_steps, order = torch.sort(steps, descending=True, stable=True)
    sorted_steps = sorted_steps.cpu()
    batch_sizes = (sorted_steps[None, :] > torch.arange(int(sorted_steps[0]))[:, None]).sum(1)  # (steps,)
    device = features.device
    step, position = _packed_positions(batch_sizes, device)  # (R,) each packed row's time and sorted position
    segment = order[position]
    if rows is not None:
        segment = rows[segment]
    frame = step[:, None] * k + torch.arange(k, device=device)[None, :]  # (R, k)
    data = features.reshape(-1, size)[segment[:, None] * num_frames + frame.clamp(max=num_frames - 1)]  # (R, k, F)
    if k > 1 and num_frames % k:  # frames past T are zeros
        data = data * (frame < num_frames)[..., None]
    return PackedSequence(data.reshape(len(step), k * size), batch_sizes, order, None)


__all__ = ["RNNS", "pack_frames", "pad_packed", "run_packed_rnn"]
