#!/usr/bin/env bash
# Trains an encoder and its noise channel with sim-pairs-v4, from committed
# data only.  The v4 records are split by a hash of the spoken phrase
# (deploy/sim-matrix.py split, HOLDOUT of them held out); every v1/v2
# record and synthetic phrase saying a held-out phrase is dropped, so
# OUTDIR/test.jsonl is unseen by the encoder and the channel alike and
# serves deploy/sim-matrix.py eval.  Never the dev queries, never a video or
# book title (the snapshots are filtered against them).
#
# The channel always learns from v1 + v2 + v4's training side.  The encoder
# trains on PAIRS: train (v1 + v2 + v4's training side, default) or
# train-v4 (v4's training side alone), plus, with SYNTHETIC=1 (the default
# without INIT), 3 channel copies of each synthetic phrase:
#   INIT unset   from scratch; with the defaults this is the shipped recipe
#                (phonetics/models/README.md): 6 epochs, lr 0.005.
#   INIT=MODEL   fine-tunes MODEL (e.g. phonetics/models/erd-siamese-v2.bin,
#                which heard flite voices only) at lr 0.002, the held-out
#                slice scoring MODEL itself as epoch 0.
#   EPOCHS       default 6 from scratch, 3 fine-tuning.
#
# usage: deploy/train-v4.sh OUTDIR [BUILD_DIR]      (default build)
#   EXCLUDE_VOICE  voices left out of training (leave-one-voice-out), e.g.
#                  festival:ked_diphone
#   HOLDOUT        share of v4 phrases held out (default 0.2)
#   V4_RECORDS     how many of the v4 snapshot's records (default 4871)
#   THREADS        training threads (default 2; the weights depend on it)
#   TRAIN_ARGS     more erd train options (e.g. "--loss apl")
# Writes OUTDIR/{train,train-v4,test}.jsonl, synthetic.txt, channel.txt,
# model.bin and train.log.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: train-v4.sh OUTDIR [BUILD_DIR]}
erd=$top/${2:-build}/erd
d=$top/phonetics/models/data
mkdir -p "$out"

# The v4 snapshot grows by appending: the first V4_RECORDS of it (4,871, what
# the models README's v4 tables were trained and measured on) unless told.
# (awk reads to the end: head would close the pipe early, and gzip's SIGPIPE
# fails the script under pipefail whenever the snapshot holds more)
gzip -dc "$d/sim-pairs-v4.jsonl.gz" | awk -v n="${V4_RECORDS:-4871}" 'NR <= n' >"$out/v4.jsonl"
split() {
    python3 "$top/deploy/sim-matrix.py" split --records "$out/v4.jsonl" \
        --test "$out/test.jsonl" --holdout "${HOLDOUT:-0.2}" \
        ${EXCLUDE_VOICE:+--exclude-voice "$EXCLUDE_VOICE"} "$@"
}
split --train "$out/train.jsonl" --train-extra "$d/sim-pairs-v1.jsonl.gz,$d/sim-pairs-v2.jsonl.gz" \
    --phrases "$d/synthetic-phrases-v2.txt.gz:$out/synthetic.txt"
split --train "$out/train-v4.jsonl"
"$erd" channel --pairs "$out/train.jsonl" --out "$out/channel.txt"
args=(--pairs "$out/${PAIRS:-train}.jsonl" --out "$out/model.bin" --seed 1 --augment 0.15
      --threads "${THREADS:-2}" --holdout 0.05)
if [ -n "${INIT:-}" ]; then
    args+=(--init "$INIT" --epochs "${EPOCHS:-3}" --lr 0.002)
else
    args+=(--epochs "${EPOCHS:-6}" --arch bag --emb 128 --dim 128 --lr 0.005)
fi
if [ "${SYNTHETIC:-$([ -n "${INIT:-}" ] && echo 0 || echo 1)}" = 1 ]; then
    args+=(--synthetic "$out/synthetic.txt" --channel "$out/channel.txt" --copies 3)
fi
# shellcheck disable=SC2086 # TRAIN_ARGS is a list of options
"$erd" train "${args[@]}" ${TRAIN_ARGS:-} 2>&1 | tee "$out/train.log"
