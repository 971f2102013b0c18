"""The audio encoder as a lexicon: can it choose among the segmenter's candidate boundaries? (issue 13, 2026-12-05)

The segmenter misses 13-15% of the word starts that follow the previous word with no pause (decode_grid.py). Here
every P(word start) peak down to 0.05 is a candidate boundary (3 frames apart); for each speech run a dynamic
programme picks the boundaries that maximise, over the words they make (up to 3 candidate intervals each),
    confidence(code of the word's frames) + gamma * log-odds P(word start) at its first frame - beta,
where confidence is the code's largest cosine to BERT's input embeddings ("maxcos") or the log of its top soft word
embedding weight ("logp"). gamma and beta are chosen on validation (boundary F1 at 20 ms), then test is scored once.
Segmenter logits from segmenter_logits.py (cached in /tmp). Run from the repository root:
    .venv/bin/python results/flite-squad/segmenter/encoder_lexicon.py outputs/segmenter/conv64x6_voices_pitch \
        outputs/finetune/graftcas_v2x256pc_soft_frozen/speechbert outputs/benchmark/dataset
"""
import itertools, os, pickle, sys, time
import numpy as np, torch
from torch.nn import functional as F
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.getcwd())
import run_segmenter as rs
import segmenter_logits
from speechbert import SpeechBertForQuestionAnswering, SpeechBertProcessor
from speechbert.segmentation_speechbert import SILENCE, BEGIN, frame_time, decode_segments
from sqa_train.data import PassageFrames
from transformers import AutoTokenizer

torch.set_num_threads(1)
SEG, QA, DATA = sys.argv[1], sys.argv[2], sys.argv[3]
K, T_LOW, MINF = 3, 0.05, 3
_, splits, logits = segmenter_logits.load(SEG, DATA)
model = SpeechBertForQuestionAnswering.from_pretrained(QA).eval()
bert = model.bert
cfg = model.config
processor = SpeechBertProcessor.for_config(cfg, AutoTokenizer.from_pretrained(QA))
frames_of = PassageFrames(processor.feature_extractor, None)
unit = F.normalize(bert.embeddings.word_embeddings.weight.detach().float(), dim=-1)
temp = cfg.alignment_temperature

def candidates(lg):
    p = lg.softmax(-1)
    speech = (p[:, SILENCE] < 0.5).numpy()
    b = p[:, BEGIN]
    lm = F.max_pool1d(b[None, None], 3, 1, 1)[0, 0]
    cand = ((b >= T_LOW) & (b >= lm)).numpy() & speech
    b = b.numpy()
    pad = np.concatenate([[False], speech, [False]])
    starts = np.flatnonzero(pad[1:] & ~pad[:-1]); ends = np.flatnonzero(~pad[1:] & pad[:-1])
    runs = []
    for a, e in zip(starts, ends):
        peaks = np.flatnonzero(cand[a:e]) + a
        kept = [int(a)]
        for f in peaks[np.lexsort((peaks, -b[peaks]))]:
            if all(abs(f - k) >= MINF for k in kept) and e - f >= MINF:
                kept.append(int(f))
        kept.sort()
        runs.append((kept + [int(e)], b))
    return runs

def segment_conf(frames, segs):
    """(maxcos, top log-prob) of each [a, b) frame segment's code over the whole vocabulary."""
    out = []
    for i in range(0, len(segs), 512):
        chunk = segs[i:i + 512]
        lengths = np.minimum([b - a for a, b in chunk], cfg.max_frames_per_segment)
        T = int(lengths.max())
        feats = np.zeros((len(chunk), T, frames.shape[1]), np.float32)
        for j, ((a, _), n) in enumerate(zip(chunk, lengths)):
            feats[j, :n] = frames[a:a + n]
        with torch.no_grad():
            codes = bert.audio_encoder(torch.from_numpy(feats), torch.as_tensor(lengths))
            sim = F.normalize(codes.float(), dim=-1) @ unit.T / temp
            top = sim.max(-1).values
            out.append(torch.stack([top * temp, top - sim.logsumexp(-1)], 1).numpy())
    return np.concatenate(out)

cache = f"/tmp/reseg_{os.path.basename(SEG.rstrip('/'))}.pkl"
if os.path.exists(cache):
    prepared = pickle.load(open(cache, "rb"))
else:
    prepared = {}
    t0 = time.time()
    for split, rows in splits.items():
        prepared[split] = {}
        for row in rows:
            pid = row["paragraph_id"]
            frames = frames_of.passage(row)
            runs = candidates(logits[split][pid])
            segs = []
            for c, _ in runs:
                for i in range(len(c) - 1):
                    for j in range(i + 1, min(i + K, len(c) - 1) + 1):
                        segs.append((c[i], c[j]))
            conf = segment_conf(frames, segs)
            prepared[split][pid] = (runs, dict(zip(segs, map(tuple, conf))))
        print(split, "prepared", time.time() - t0, flush=True)
    pickle.dump(prepared, open(cache, "wb"))

def decode(split, pid, which, gamma, beta):
    runs, conf = prepared[split][pid]
    words = []
    for c, b in runs:
        lo = np.log(np.clip(b, 1e-6, 1 - 1e-6) / np.clip(1 - b, 1e-6, 1))
        n = len(c)
        best = [-np.inf] * n; back = [0] * n; best[0] = 0.0
        for j in range(1, n):
            for i in range(max(0, j - K), j):
                s = best[i] + conf[(c[i], c[j])][which] - beta + (gamma * lo[c[i]] if i else 0.0)
                if s > best[j]:
                    best[j], back[j] = s, i
        j, bounds = n - 1, []
        while j:
            bounds.append(j); j = back[j]
        bounds = [0] + bounds[::-1]
        words += [(c[a], c[b_]) for a, b_ in zip(bounds[:-1], bounds[1:])]
    if not words:
        return []
    t = frame_time(np.asarray(words, float), cfg.hop_ms / 1000, cfg.window_ms / 1000)
    t[:, 0] = np.maximum(t[:, 0], 0)
    return [(round(float(s), 4), round(float(e), 4)) for s, e in t]

def score(split, *setting):
    return rs.score_rows(splits[split], lambda row: decode(split, row["paragraph_id"], *setting))["all"]

base = {s: rs.score_rows(splits[s], lambda row: decode_segments(logits[s][row["paragraph_id"]], .01, .025, .3, 3))["all"] for s in splits}
print("segmenter alone: val F1 20ms %.2f, test %.2f (P %.1f R %.1f, ratio %.3f)" % (
    base["validation"]["f1_20ms"], base["test"]["f1_20ms"], base["test"]["precision_20ms"], base["test"]["recall_20ms"], base["test"]["word_ratio"]), flush=True)
grid = []
for which, gamma in itertools.product((0, 1), (0.0, 0.25, 0.5, 1.0, 2.0)):
    betas = {0: (0.3, 0.4, 0.5, 0.6, 0.7, 0.8), 1: (-1.0, 0.0, 1.0, 2.0, 3.0, 4.0)}[which]
    for beta in betas:
        r = score("validation", which, gamma, beta)
        grid.append((r["f1_20ms"], (which, gamma, beta), r["word_ratio"]))
        print("val", ("maxcos", "logp")[which], gamma, beta, r["f1_20ms"], r["f1_50ms"], r["word_ratio"], flush=True)
grid.sort(key=lambda g: -g[0])
best = grid[0][1]
r = score("test", *best)
print("best on validation", best, grid[0][0], "-> test P %.1f R %.1f F1 %.2f F1_50 %.2f ratio %.3f" % (
    r["precision_20ms"], r["recall_20ms"], r["f1_20ms"], r["f1_50ms"], r["word_ratio"]))
