#!/bin/bash
# One consume run from disk: a broker (given binary) pinned to CPU 0 takes ~4 GB from
# riffle-loadgen flat out (PARTS partitions, 1 KiB records), is restarted (so its tail caches are
# cold and every Fetch reads segments), and serves two consumers reading from the earliest offset
# for 10 s (2 s warm-up). Prints the broker's CPU seconds over the consume run, the bytes consumed
# and CPU s per GB. Alternate binaries.
# usage: bench/results/2026-12-03-consume-ab.sh NAME BIN PARTS
name=$1 bin=$2 parts=$3
out=${OUT:-/tmp/riffle-consume-ab}; mkdir -p $out
d=/var/tmp/riffle-cons-$name; rm -rf $d; mkdir -p $d
L=${LOADGEN:-target/release/riffle-loadgen}
start() {
  taskset -c 0 $bin serve --smp 1 --data-dir $d --listen 127.0.0.1:19092 --admin-listen 127.0.0.1:19093 --log-level warn > $out/$name.log 2>&1 &
  pid=$!; sleep 2
}
start
taskset -c 1 $L produce --bootstrap 127.0.0.1:19092 --create-partitions $parts --producers 4 --in-flight 20 --rate 0 --duration 5s --warmup 0s --quiet 2>&1 | grep produce | sed "s/^/$name /"
kill $pid; wait $pid 2>/dev/null
start
t0=$(awk '{print $14+$15}' /proc/$pid/stat)
taskset -c 1 $L consume --bootstrap 127.0.0.1:19092 --consumers 2 --duration 8s --warmup 2s --quiet --out $out/cons-$name > /dev/null 2>&1
t1=$(awk '{print $14+$15}' /proc/$pid/stat)
kill $pid; wait $pid 2>/dev/null; rm -rf $d
python3 - $out/cons-$name/summary.json $(( t1 - t0 )) $name <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); cpu = int(sys.argv[2]) / 100; gb = d["bytes_total"] / 1e9
print(f"{sys.argv[3]} consumed {gb:.2f} GB at {d['mb_per_s']:.0f} MB/s (measured part), broker CPU {cpu:.2f} s, "
      f"{cpu / gb:.3f} CPU s/GB, loadgen busy {d['loadgen_cpu_util']:.0%}")
PY
