"""Step 2 of 2: a convolutional word encoder (3 frames a step, HIDDEN channels, LAYERS residual dilated convolutions of
kernel 3, mean and max pooling over the segment, a projection to BERT's 384) trained EPOCHS epochs to reproduce the
teacher's codes (1 - cosine + 0.1 x squared norm difference) plus 0.2 x the step-1 cosine softmax over the word's
first piece and 1,024 sampled word-initial pieces; validation top-1 (nearest word-initial piece is the first piece,
as `python -m sqa_train.codes`) every 200 steps, then one 60 s passage's worth of segments (the first 150
validation ones) timed through student and teacher on one thread. Writes DIR/student_h<HIDDEN>x<LAYERS>.json:
    .venv/bin/python results/flite-squad/step1/conv_student/train.py outputs/benchmark/step1_pitch /root/distill 256 4 3
"""
import os, sys, time, json, numpy as np, torch
from torch import nn
from torch.nn import functional as F
sys.path.insert(0, os.getcwd())
from transformers import AutoTokenizer
from sqa_train.codes import word_initial_ids
torch.set_num_threads(1); torch.manual_seed(0)
TEACHER, D = sys.argv[1], sys.argv[2]
HIDDEN, LAYERS, EPOCHS = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
TAG = f"h{HIDDEN}x{LAYERS}"
tok = AutoTokenizer.from_pretrained(TEACHER)
from safetensors.torch import load_file
emb = load_file(f"{TEACHER}/model.safetensors")
E = [v for k, v in emb.items() if k.endswith("word_embeddings.weight")][0].float()
E_unit = F.normalize(E, dim=-1)
cand = torch.from_numpy(word_initial_ids(tok))
data = {s: dict(np.load(f"{D}/{s}.npz")) for s in ("train", "validation")}

class ConvWordEncoder(nn.Module):
    def __init__(self, feat=39, stack=3, hidden=256, layers=4, kernel=3, out=384):
        super().__init__()
        self.stack = stack
        self.inp = nn.Linear(feat * stack, hidden)
        self.convs = nn.ModuleList(nn.Conv1d(hidden, hidden, kernel, padding=2**i * (kernel // 2), dilation=2**i)
                                   for i in range(layers))
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(layers))
        self.out = nn.Linear(2 * hidden, out)
    def forward(self, x, lengths):
        N, T, Fd = x.shape
        pad = (-T) % self.stack
        if pad: x = F.pad(x, (0, 0, 0, pad))
        x = x.reshape(N, -1, Fd * self.stack)
        steps = (lengths + self.stack - 1) // self.stack
        mask = (torch.arange(x.shape[1])[None] < steps[:, None]).float()[..., None]
        h = F.gelu(self.inp(x)) * mask
        for conv, norm in zip(self.convs, self.norms):
            h = (h + F.gelu(norm(conv(h.transpose(1, 2)).transpose(1, 2)))) * mask
        mean = h.sum(1) / steps[:, None]
        mx = h.masked_fill(mask == 0, -1e4).max(1).values
        return self.out(torch.cat([mean, mx], -1))

def batch(split, idx):
    d = data[split]; off = d["offsets"]
    lens = off[idx + 1] - off[idx]
    lens = np.minimum(lens, 100)
    T = int(lens.max())
    x = np.zeros((len(idx), T, 39), np.float32)
    for j, i in enumerate(idx):
        x[j, :lens[j]] = d["frames"][off[i]:off[i] + lens[j]]
    return torch.from_numpy(x), torch.from_numpy(lens), torch.from_numpy(d["codes"][idx].astype(np.float32)), torch.from_numpy(d["targets"][idx])

def top1(codes, targets):
    hits = 0
    for i in range(0, len(codes), 2048):
        sim = F.normalize(codes[i:i + 2048], dim=-1) @ E_unit[cand].T
        hits += (cand[sim.argmax(-1)] == targets[i:i + 2048]).sum().item()
    return 100 * hits / len(codes)

def encode(model, split):
    n = len(data[split]["targets"]); out = []
    with torch.no_grad():
        for i in range(0, n, 512):
            x, l, _, _ = batch(split, np.arange(i, min(i + 512, n)))
            out.append(model(x, l))
    return torch.cat(out)

val_t = torch.from_numpy(data["validation"]["targets"])
teacher_val = torch.from_numpy(data["validation"]["codes"].astype(np.float32))
print("teacher validation top-1 %.2f" % top1(teacher_val, val_t), flush=True)
model = ConvWordEncoder(hidden=HIDDEN, layers=LAYERS)
print("student parameters", sum(p.numel() for p in model.parameters()), flush=True)
n = len(data["train"]["targets"]); B = 256
steps = int(EPOCHS * n / B)
opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.05)
t0 = time.time(); rng = np.random.default_rng(0); log = []
for step in range(steps):
    idx = rng.integers(0, n, B)
    x, l, t, y = batch("train", idx)
    s = model(x, l)
    distill = (1 - F.cosine_similarity(s, t, dim=-1)).mean() + 0.1 * (s.norm(dim=-1) - t.norm(dim=-1)).pow(2).mean()
    neg = cand[torch.randint(len(cand), (1024,))]
    classes = torch.unique(torch.cat([y, neg]))
    logits = F.normalize(s, dim=-1) @ E_unit[classes].T / 0.05
    ce = F.cross_entropy(logits, torch.searchsorted(classes, y))
    loss = distill + 0.2 * ce
    opt.zero_grad(); loss.backward(); opt.step(); sched.step()
    if step % 200 == 0 or step == steps - 1:
        model.eval(); v = encode(model, "validation"); model.train()
        r = {"step": step, "epoch": round(step * B / n, 2), "loss": round(loss.item(), 4), "distill": round(distill.item(), 4),
             "val_top1": round(top1(v, val_t), 2), "val_cos_to_teacher": round(F.cosine_similarity(v, teacher_val).mean().item(), 4),
             "minutes": round((time.time() - t0) / 60, 1)}
        log.append(r); print(r, flush=True)
        torch.save(model.state_dict(), f"{D}/student_{TAG}.pt")
# speed: one 60 s passage's worth of segments (150 validation segments), student vs teacher, 1 thread
from speechbert import SpeechBertForPreTraining
teacher = SpeechBertForPreTraining.from_pretrained(TEACHER).bert.audio_encoder.eval()
model.eval()
x, l, _, _ = batch("validation", np.arange(150))
def med(f, k=15):
    ts = []
    for _ in range(k):
        a = time.perf_counter(); f(); ts.append(time.perf_counter() - a)
    return 1000 * float(np.median(ts))
with torch.no_grad():
    ms_s, ms_t = med(lambda: model(x, l)), med(lambda: teacher(x, l))
print({"student_ms": round(ms_s, 1), "teacher_ms": round(ms_t, 1), "ratio": round(ms_t / ms_s, 1), "frames": int(l.sum())}, flush=True)
json.dump({"log": log, "student_ms": ms_s, "teacher_ms": ms_t}, open(f"{D}/student_{TAG}.json", "w"), indent=1)
