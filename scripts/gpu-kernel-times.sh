#!/usr/bin/env bash
# Per-kernel GPU times of banyan_bench_cuda's decode, by Nsight Compute (one kernel
# at a time, clocks left alone): each kernel's duration without overlap with its
# neighbours, summed by kernel name. Run after scripts/gpu-verify.sh with BENCH=1
# (it uses build-gpu/bin/banyan_bench_cuda). BATCH (default 1) picks the batch.
# Writes $OUT/ncu_b$BATCH.csv (raw) and prints the table.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${OUT:-build/gpu-out}"
batch="${BATCH:-1}"
mkdir -p "$out"
timeout "${TIMEOUT:-200}" ncu --clock-control none --metrics gpu__time_duration.sum --csv \
  --launch-count "${LAUNCHES:-3000}" build-gpu/bin/banyan_bench_cuda --batches "$batch" --steps 2 \
  --reps 1 --prefill 512 --out /tmp/kernel-times.json > "$out/ncu_b$batch.csv" 2> "$out/ncu_b$batch.err"
python3 - "$out/ncu_b$batch.csv" <<'PY'
import collections, csv, re, sys
hdr, agg = None, collections.defaultdict(lambda: [0, 0.0])
for r in csv.reader(open(sys.argv[1])):
    if hdr is None:
        if 'Kernel Name' in r:
            hdr = r
        continue
    if len(r) != len(hdr):
        continue
    d = dict(zip(hdr, r))
    try:
        v = float(d['Metric Value'].replace(',', ''))
    except ValueError:
        continue
    name = re.sub(r'\(.*', '', d['Kernel Name'])[:80]
    agg[name][0] += 1
    agg[name][1] += v
for k, (n, t) in sorted(agg.items(), key=lambda x: -x[1][1])[:30]:
    print(f"{n:6d} x {t / n / 1000:8.2f} us = {t / 1e6:8.3f} ms  {k}")
PY
