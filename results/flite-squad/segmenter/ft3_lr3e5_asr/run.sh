# bench-no-asr's last step (one more epoch, encoder frozen) for the ASR-segment system at a third of its learning rate (3e-5 instead of 1e-4).
# Run from the repository root.
NAME=ft3_lr3e5_asr SYSTEMS=speechbert LR=3e-5 bash results/flite-squad/segmenter/third_epoch.sh
