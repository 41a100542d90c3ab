#!/usr/bin/env python3
"""A confluent-kafka (librdkafka) flood against one broker: produce MESSAGES values of SIZE bytes as
fast as the client takes them, acks=all, and measure msgs/s, per-message delivery latency (from
produce() to the delivery report, librdkafka's own Message.latency()) and the broker's CPU seconds
per GB (utime+stime of --broker-pid over the measured flood). Prints one JSON object.

Used by bench/tansu-compare, which runs it against each broker with the same settings."""

import argparse
import json
import os
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        # the command name may contain spaces: fields count from after its closing parenthesis
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def percentile(sorted_values, q):
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--messages", type=int, default=500_000)
    ap.add_argument("--warmup-messages", type=int, default=20_000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--max-seconds", type=float, default=60.0, help="stop producing after this long")
    ap.add_argument("--broker-pid", type=int, required=True)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra librdkafka producer setting (same for every broker)")
    ap.add_argument("--consume", action="store_true",
                    help="then read the whole topic back with a consumer (manual assignment) and "
                         "report its msgs/s and the broker's CPU s/GB for it")
    args = ap.parse_args()

    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    futures = admin.create_topics([NewTopic(args.topic, args.partitions, 1)], operation_timeout=10)
    for f in futures.values():
        try:
            f.result(timeout=15)
        except KafkaException as e:
            if e.args[0].code() != 36:  # TOPIC_ALREADY_EXISTS
                raise

    conf = {
        "bootstrap.servers": args.bootstrap,
        "acks": "all",
        "linger.ms": 5,
        "enable.idempotence": False,
        "compression.type": "none",
    }
    for kv in args.set:
        k, v = kv.split("=", 1)
        conf[k] = v
    producer = Producer(conf)

    value = (b"riffle-flood-" * (args.size // 13 + 1))[: args.size]
    latencies = []
    errors = [0]
    measuring = [False]

    def delivered(err, msg):
        if err is not None:
            errors[0] += 1
        elif measuring[0]:
            latencies.append(msg.latency())

    def produce(n, deadline):
        sent = 0
        produce_ = producer.produce
        while sent < n and time.monotonic() < deadline:
            try:
                produce_(args.topic, value, on_delivery=delivered)
                sent += 1
            except BufferError:
                producer.poll(0.001)
            if sent % 1000 == 0:
                producer.poll(0)
        return sent

    # Warm-up: connections, metadata, first segments. Not measured.
    produce(args.warmup_messages, time.monotonic() + args.max_seconds)
    if producer.flush(30) != 0:
        print("flood.py: warm-up not delivered in 30 s", file=sys.stderr)
        sys.exit(1)

    measuring[0] = True
    cpu0 = cpu_s(args.broker_pid)
    client0 = os.times()
    t0 = time.monotonic()
    sent = produce(args.messages, t0 + args.max_seconds)
    left = producer.flush(30)
    elapsed = time.monotonic() - t0
    cpu1 = cpu_s(args.broker_pid)
    client1 = os.times()
    # this process: the Python produce loop and librdkafka's threads
    client_cpu = (client1.user - client0.user) + (client1.system - client0.system)

    latencies.sort()
    delivered_n = len(latencies)
    gb = delivered_n * args.size / 1e9
    consumed = consume_all(args) if args.consume else None
    print(json.dumps({
        "bootstrap": args.bootstrap,
        "messages_sent": sent,
        "messages_delivered": delivered_n,
        "undelivered": left,
        "errors": errors[0],
        "seconds": round(elapsed, 3),
        "msgs_per_s": round(delivered_n / elapsed, 1),
        "mb_per_s": round(delivered_n * args.size / elapsed / 1e6, 2),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 3),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 3),
        "p999_ms": round(percentile(latencies, 0.999) * 1000, 3),
        "max_ms": round(latencies[-1] * 1000, 3) if latencies else None,
        "broker_cpu_s": round(cpu1 - cpu0, 2),
        "broker_cpu_s_per_gb": round((cpu1 - cpu0) / gb, 2) if gb else None,
        "broker_cpu_util": round((cpu1 - cpu0) / elapsed, 2),
        "client_cpu_util": round(client_cpu / elapsed, 2),
        "client_settings": conf | {"bootstrap.servers": "-"},
        "consume": consumed,
    }))


def consume_all(args):
    """Reads every partition of the topic from the beginning to its end as it is now, with one
    librdkafka consumer (manual assignment, no group): msgs/s and the broker's CPU s/GB."""
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": "flood-reader",  # required by librdkafka; nothing is committed
        "enable.auto.commit": False,
        "fetch.max.bytes": 52428800,
        "max.partition.fetch.bytes": 8388608,
    })
    ends = {}
    for p in range(args.partitions):
        _, high = consumer.get_watermark_offsets(TopicPartition(args.topic, p), timeout=10)
        ends[p] = high
    total = sum(ends.values())
    consumer.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in range(args.partitions)])
    cpu0 = cpu_s(args.broker_pid)
    t0 = time.monotonic()
    got = 0
    nbytes = 0
    deadline = t0 + args.max_seconds
    while got < total and time.monotonic() < deadline:
        for m in consumer.consume(num_messages=10000, timeout=1.0):
            if m.error() is None:
                got += 1
                nbytes += len(m.value())
    elapsed = time.monotonic() - t0
    cpu1 = cpu_s(args.broker_pid)
    consumer.close()
    gb = nbytes / 1e9
    return {
        "messages": got,
        "expected": total,
        "seconds": round(elapsed, 3),
        "msgs_per_s": round(got / elapsed, 1),
        "mb_per_s": round(nbytes / elapsed / 1e6, 2),
        "broker_cpu_s": round(cpu1 - cpu0, 2),
        "broker_cpu_s_per_gb": round((cpu1 - cpu0) / gb, 2) if gb else None,
    }


if __name__ == "__main__":
    main()
