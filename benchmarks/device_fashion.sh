#!/usr/bin/env bash
# Issue 20's GPU half in one prepared script, for a session lent a device machine:
#
#   run: bash benchmarks/device_fashion.sh teacher nopool peers search   (any subset, in order)
#
# Stages, most wanted first; each writes its JSON and log under $OUT (the device tool brings
# that folder back) and prints one line per epoch, so nothing is silent:
#   teacher  the recipe teacher (examples/fashion/train_teacher.py, 40 epochs, 55k images)
#            on the GPU: the README's GPU time, and the teacher the later stages use
#   nopool   the same recipe with --arch-args stem_pool=false (a 16x16 map after the stem)
#   peers    benchmarks/peers.py --data fashion-mnist on all 55k training images, 20 epochs
#   search   benchmarks/search_proxies.py --data fashion-mnist, all images, KD on the GPU
# QUICK=1 shrinks every stage to a smoke run (2,000 images, 1 epoch) to check the script
# itself on a CPU; those numbers mean nothing. The teacher stages keep their .pt under $OUT
# (the device tool brings back small files only: copy it out in the same call if wanted).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/device_fashion}
mkdir -p "$OUT"
PY=${PY:-.venv/bin/python}
Q=(); CANDS=()
if [[ "${QUICK:-0}" == 1 ]]; then
  Q=(--max-train 2000 --epochs 1); CANDS=(--candidates resnet10t mobilenetv3_small_050 lcnet_050)
fi
TEACHER="$OUT/teacher.pt"
(( $# )) || set -- teacher nopool peers search
DEV=$($PY -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')
echo "device_fashion: $* -> $OUT, on $DEV"
for stage in "$@"; do
  echo "=== $stage $(date -u +%FT%TZ)"
  case "$stage" in
    teacher) $PY examples/fashion/train_teacher.py --out "$TEACHER" "${Q[@]}" \
               2>&1 | tee "$OUT/teacher.log" ;;
    nopool)  $PY examples/fashion/train_teacher.py --arch-args stem_pool=false \
               --out "$OUT/teacher-nopool.pt" "${Q[@]}" 2>&1 | tee "$OUT/nopool.log" ;;
    peers)   test -f "$TEACHER" || { echo "peers needs the teacher stage first"; exit 1; }
             $PY benchmarks/peers.py --data fashion-mnist --teacher "$TEACHER" \
               --out "$OUT/peers-fashion-mnist-gpu.json" "${Q[@]}" 2>&1 | tee "$OUT/peers.log" ;;
    search)  test -f "$TEACHER" || { echo "search needs the teacher stage first"; exit 1; }
             $PY benchmarks/search_proxies.py --data fashion-mnist --teacher "$TEACHER" \
               --device "$DEV" --jobs 1 --seeds 0 --no-stability \
               --out "$OUT/search_proxies-fashion-mnist-gpu.json" "${Q[@]}" "${CANDS[@]}" \
               2>&1 | tee "$OUT/search.log" ;;
    *) echo "unknown stage $stage: use teacher, nopool, peers or search"; exit 1 ;;
  esac
done
echo "=== done $(date -u +%FT%TZ); results in $OUT"
