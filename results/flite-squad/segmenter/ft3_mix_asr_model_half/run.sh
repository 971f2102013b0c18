# bench-no-asr's last step (one more pass, encoder frozen) for the segmenter's system trained at ASR segments and at its
# own segments together (run_sqa.py --train_segments asr model: every question's windows at both), half an epoch of
# that doubled set, so as many steps (983) as the recipe's third epoch at its own segments (981); evaluated at its own
# segments. Thirteenth session (to step 200) and fourteenth (resumed). Run from the repository root.
NAME=ft3_mix_asr_model_half EPOCHS=0.5 EXTRA="--train_segments asr model" bash results/flite-squad/segmenter/third_epoch.sh
