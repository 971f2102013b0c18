"""Issue 13, 2026-12-05: can a convolutional word encoder replace the 2 x biGRU-256 one (108 ms of a 60 s no-ASR
question)? Step 1 of 2: every reference word segment of a split (frames, first-piece target, voice) and the teacher
encoder's code for it, in OUT/SPLIT.npz (not committed: about 1 GB). Run from the repository root:
    .venv/bin/python results/flite-squad/step1/conv_student/prepare.py outputs/benchmark/step1_pitch \
        outputs/benchmark/dataset /root/distill
"""
import os, sys, time, numpy as np, torch
sys.path.insert(0, os.getcwd())
from speechbert import SpeechBertForPreTraining, SpeechBertProcessor
from sqa_train.data import PassageFrames, load_corpus
from sqa_train.codes import first_pieces
import run_segmenter as rs
from transformers import AutoTokenizer
torch.set_num_threads(1)
TEACHER, DATA, OUT = sys.argv[1], sys.argv[2], sys.argv[3]
model = SpeechBertForPreTraining.from_pretrained(TEACHER).eval()
tok = AutoTokenizer.from_pretrained(TEACHER)
proc = SpeechBertProcessor.for_config(model.config, tok)
frames_of = PassageFrames(proc.feature_extractor, None)
corpus = load_corpus(DATA)
for split in ("validation", "test", "train"):
    t0 = time.time()
    rows = rs.passage_rows(corpus[split])
    feats, lens, targets, voices, codes = [], [], [], [], []
    for row in rows:
        first, length = frames_of.add(row, "ref")
        passage = frames_of.frames[row["paragraph_id"]]
        T = int(length.max())
        idx = np.minimum(first[:, None] + np.arange(T)[None], len(passage) - 1)
        f = passage[idx].astype(np.float32)
        f[np.arange(T)[None] >= length[:, None]] = 0
        with torch.no_grad():
            c = model.bert.audio_encoder(torch.from_numpy(f), torch.from_numpy(length))
        for i in range(len(length)):
            feats.append(f[i, :length[i]].astype(np.float16))
        lens += length.tolist(); codes.append(c.numpy().astype(np.float16))
        targets += first_pieces(tok, row["ref_words"]).tolist(); voices += [row["voice"]] * len(length)
        del frames_of.frames[row["paragraph_id"]]
    offsets = np.concatenate([[0], np.cumsum(lens)])
    np.savez(f"{OUT}/{split}.npz", frames=np.concatenate(feats), offsets=offsets, targets=np.array(targets),
             voices=np.array(voices), codes=np.concatenate(codes))
    print(split, len(rows), "passages", len(lens), "segments", round(time.time() - t0), "s", flush=True)
