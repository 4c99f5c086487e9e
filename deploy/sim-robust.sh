#!/usr/bin/env bash
# The robust-training simulation (v4): every English voice of Debian's flite
# and festival packages, speed 0.8-1.25 and pitch +-250 cents, noise in 60 %
# of utterances at 0-40 dB SNR (white, pink, brown, or babble of three other
# talkers for 30 % of the noisy ones), a reverberant room for 25 %, a
# band-limited mu-law telephone line for 15 %, pocketsphinx 5-best.
#
# Start it with setsid (its own session, which it then puts at the lowest
# scheduling weight) and nohup, e.g.
#   setsid nohup deploy/sim-robust.sh OUT build CATALOGS... >>OUT/log 2>&1 &
#
# Phrases: `erd phrases --seed 41 --count 100000` minus every evaluation
# title (deploy/sim-snapshot.sh).  Resumable: run it again with the same
# OUTDIR and it carries on where it stopped.  Hours of CPU: run it in the
# background, and freeze what it has with
#   deploy/sim-snapshot.sh phonetics/models/data/sim-pairs-v4.jsonl.gz OUTDIR/pairs-v4.jsonl CATALOGS...
#
# usage: deploy/sim-robust.sh OUTDIR [BUILD_DIR] [CATALOG.jsonl ...]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: sim-robust.sh OUTDIR [BUILD_DIR] [CATALOG.jsonl ...]}
build=${2:-build}
shift $(( $# >= 2 ? 2 : 1 ))
erd=$top/$build/erd
mkdir -p "$out"
if [ ! -s "$out/phrases.txt" ]; then
    "$erd" phrases --seed 41 --count 100000 > "$out/phrases-raw.txt"
    "$top/deploy/sim-snapshot.sh" "$out/phrases.txt.gz" "$out/phrases-raw.txt" "$@"
    gzip -dc "$out/phrases.txt.gz" > "$out/phrases.txt"
fi
# nice alone does not yield to other sessions' work under Linux's autogroup
# scheduling (each session is one group, weighed equally whatever its
# processes' nice): started as a session of its own (setsid), lower its group
if [ "$(ps -o sid= -p $$ | tr -d ' ')" = "$$" ] && [ -w /proc/self/autogroup ]; then
    echo 19 >/proc/self/autogroup 2>/dev/null || true
fi
exec nice -n 19 "$erd" simulate --in "$out/phrases.txt" --out "$out/pairs-v4.jsonl" \
    --jobs "${JOBS:-2}" --seed 41 \
    --voices slt,rms,awb,kal,kal16,festival:kal_diphone,festival:ked_diphone,festival:cmu_us_slt_arctic_hts \
    --speed-min 0.8 --speed-max 1.25 --pitch-cents 250 \
    --noise-prob 0.6 --snr-min 0 --snr-max 40 --babble 0.3 \
    --reverb 0.25 --telephone 0.15
