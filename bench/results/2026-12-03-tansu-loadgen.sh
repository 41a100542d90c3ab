#!/bin/bash
# Riffle (fdatasync, acks=all) vs Tansu 0.6.0 memory engine: riffle-loadgen flat out, then open loop at a common rate.
set -u
LG=/work/main/target/release/riffle-loadgen
cpu() { awk '{print ($14+$15)/100}' /proc/$1/stat; }
one() { # name port pid rate
  local name=$1 port=$2 pid=$3 rate=$4 out=/tmp/t4/$1-$4
  local c0=$(cpu $pid)
  taskset -c 1 $LG produce --bootstrap 127.0.0.1:$port --topic t4-$rate --create-partitions 4 --size 1024 --rate $rate --acks all --producers 4 --duration 10s --warmup 3s --quiet --linger-ms 1 --out $out 2>&1 | grep -E 'produce|loadgen CPU' | sed "s#^#$name rate=$rate #"
  local c1=$(cpu $pid)
  python3 -c "import json;d=json.load(open('$out/summary.json'));gb=d['bytes_total']/1e9;print('$name rate=$rate broker CPU s', round($c1-$c0,2), 'CPU s/GB', round(($c1-$c0)/gb,2))"
}
for round in 1 2; do
 for b in riffle tansu; do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  rm -rf /tmp/t4/data
  if [ $b = riffle ]; then taskset -c 0 /work/main/target/release/riffle serve --listen 127.0.0.1:$port --admin-listen 127.0.0.1:0 --data-dir /tmp/t4/data --smp 1 --log-level warn >/tmp/t4/$b.log 2>&1 &
  else (cd /tmp/t4 && taskset -c 0 /tmp/riffle-peers/tansu/bin/tansu broker --listener-url tcp://127.0.0.1:$port --advertised-listener-url tcp://127.0.0.1:$port --storage-engine memory://tansu/ >/tmp/t4/$b.log 2>&1 &) ; fi
  sleep 3; pid=$(pgrep -f "127.0.0.1:$port" | head -1)
  one $b $port $pid 0
  one $b $port $pid ${COMMON:-100000}
  kill $pid; sleep 1
 done
done
