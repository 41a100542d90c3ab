#!/bin/bash
# T5 estimate input: the broker's CPU per GB and its cross-shard requests at one fixed rate, with
# --smp 1 and --smp 2 alternated (the machine has 2 cores, so neither is CPU-bound at this rate;
# the difference is what a second shard adds per byte: forwarding, smaller rounds per shard).
# usage: bench/results/2026-12-03-smp-scaling.sh RATE PARTITIONS ROUNDS [riffle bin]
rate=$1 parts=$2 rounds=$3 bin=${4:-target/release/riffle}
out=${OUT:-/tmp/riffle-smp}; mkdir -p $out
for round in $(seq 1 $rounds); do
  for smp in 1 2; do
    name=smp$smp-p$parts-r$rate-$round
    d=/var/tmp/riffle-smp-$name; rm -rf $d; mkdir -p $d
    $bin serve --smp $smp --data-dir $d --listen 127.0.0.1:19092 --admin-listen 127.0.0.1:19093 --log-level warn > $out/$name.log 2>&1 &
    pid=$!; sleep 2
    t0=$(awk '{print $14+$15}' /proc/$pid/stat)
    target/release/riffle-loadgen produce --bootstrap 127.0.0.1:19092 --create-partitions $parts --producers 4 --rate $rate --duration 10s --warmup 3s --quiet --out $out/out-$name 2>&1 | grep -E 'produce|CPU' | sed "s/^/$name /"
    t1=$(awk '{print $14+$15}' /proc/$pid/stat)
    echo "$name broker cpu s: $(( t1-t0 ))/100"
    curl -s 127.0.0.1:19093/metrics | grep -E '^riffle_(cross_shard_requests_total|device_flushes_total|request_duration_seconds_count\{.*Produce)' | sed "s/^/$name /"
    kill $pid; wait $pid 2>/dev/null; rm -rf $d
  done
done
