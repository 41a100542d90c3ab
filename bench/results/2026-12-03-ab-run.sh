#!/bin/bash
# One A/B run: a broker (given binary, optional TOML config) pinned to CPU 0, riffle-loadgen on CPU 1
# at RATE msgs/s (0 = flat out), PRODUCERS (4) producers plus LOADGEN_EXTRA flags, 1 KiB records; prints the loadgen line, the broker's CPU
# seconds over the run (/proc utime+stime, ticks/100) and its own Produce-duration and
# segment-fdatasync histograms (share of requests at or under each bound). Alternate binaries.
# usage: bench/results/2026-12-03-ab-run.sh NAME RATE PARTS [config.toml] [riffle bin]
name=$1 rate=$2 parts=$3 cfg=$4 bin=${5:-target/release/riffle}
mkdir -p "${OUT:-/tmp/riffle-ab}"
d=/var/tmp/riffle-lat-$name; rm -rf $d; mkdir -p $d
extra=(); [[ -n "$cfg" ]] && extra=(--config $cfg)
${BROKER_PIN:-taskset -c 0} $bin serve --smp 1 --data-dir $d --listen 127.0.0.1:19092 --admin-listen 127.0.0.1:19093 --log-level warn "${extra[@]}" > ${OUT:-/tmp/riffle-ab}/$name.log 2>&1 &
pid=$!; sleep 2
t0=$(awk '{print $14+$15}' /proc/$pid/stat)
taskset -c 1 ${LOADGEN:-target/release/riffle-loadgen} produce --bootstrap 127.0.0.1:19092 --create-partitions $parts --producers ${PRODUCERS:-4} ${LOADGEN_EXTRA:-} --rate $rate --duration 10s --warmup 3s --quiet --out ${OUT:-/tmp/riffle-ab}/out-$name 2>&1 | grep -E 'produce|CPU' | sed "s/^/$name /"
t1=$(awk '{print $14+$15}' /proc/$pid/stat)
echo "$name broker cpu s: $(( (t1-t0) ))/100"
curl -s 127.0.0.1:19093/metrics > ${OUT:-/tmp/riffle-ab}/$name.metrics
python3 - ${OUT:-/tmp/riffle-ab}/$name.metrics <<'PY'
import sys,re
for fam,lab in [("riffle_request_duration_seconds",'api="Produce"'),("riffle_log_fdatasync_duration_seconds","")]:
    rows=[l for l in open(sys.argv[1]) if l.startswith(fam+"_bucket") and lab in l]
    cum=[(l.split('le="')[1].split('"')[0], int(float(l.split()[-1]))) for l in rows]
    tot=cum[-1][1] if cum else 0
    print(" ", fam.split('_')[1], "n=%d"%tot, " ".join("<=%s:%.4f"%(le,c/tot) for le,c in cum if tot and le in ("0.0005","0.001","0.0025","0.005","0.01","0.025")))
PY
kill $pid; wait $pid 2>/dev/null; rm -rf $d
