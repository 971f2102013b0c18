# bench-no-asr's last step (one more epoch, encoder frozen) for the segmenter's system trained at forced-alignment segments (run_sqa.py --train_segments ref), evaluated at the segmenter's.
# Run from the repository root.
NAME=ft3_ref EXTRA="--train_segments ref" bash results/flite-squad/segmenter/third_epoch.sh
