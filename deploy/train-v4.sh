#!/usr/bin/env bash
# Trains an encoder and its noise channel on v1 + v2 + the training side of
# sim-pairs-v4, with the shipped recipe (phonetics/models/README.md), from
# committed data only.  The v4 records are split by a hash of the spoken
# phrase (deploy/sim-matrix.py split, HOLDOUT of them held out); every
# v1/v2 record and synthetic phrase saying a held-out phrase is dropped, so
# OUTDIR/test.jsonl is unseen by the encoder and the channel alike and
# serves deploy/sim-matrix.py eval.  Never the dev queries, never a video or
# book title (the snapshots are filtered against them).
#
# usage: deploy/train-v4.sh OUTDIR [BUILD_DIR]      (default build)
#   EXCLUDE_VOICE  voices left out of training (leave-one-voice-out), e.g.
#                  festival:ked_diphone
#   HOLDOUT        share of v4 phrases held out (default 0.2)
#   THREADS        training threads (default 2; the weights depend on it)
# Writes OUTDIR/{train,test}.jsonl, synthetic.txt, channel.txt, model.bin
# and train.log.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: train-v4.sh OUTDIR [BUILD_DIR]}
erd=$top/${2:-build}/erd
d=$top/phonetics/models/data
mkdir -p "$out"

python3 "$top/deploy/sim-matrix.py" split --records "$d/sim-pairs-v4.jsonl.gz" \
    --train-extra "$d/sim-pairs-v1.jsonl.gz,$d/sim-pairs-v2.jsonl.gz" \
    --train "$out/train.jsonl" --test "$out/test.jsonl" --holdout "${HOLDOUT:-0.2}" \
    ${EXCLUDE_VOICE:+--exclude-voice "$EXCLUDE_VOICE"} \
    --phrases "$d/synthetic-phrases-v2.txt.gz:$out/synthetic.txt"
"$erd" channel --pairs "$out/train.jsonl" --out "$out/channel.txt"
"$erd" train --pairs "$out/train.jsonl" --synthetic "$out/synthetic.txt" \
    --channel "$out/channel.txt" --copies 3 --out "$out/model.bin" --seed 1 --epochs 6 \
    --arch bag --emb 128 --dim 128 --lr 0.005 --augment 0.15 --threads "${THREADS:-2}" \
    --holdout 0.05 2>&1 | tee "$out/train.log"
