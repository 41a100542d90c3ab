"""confluent-kafka load: an idempotent producer (acks=all) sends messages round-robin over the
partitions and appends every acknowledged one to ACKED_FILE as "partition offset i", flushed
at once, so the file survives the producer being killed. Sends COUNT messages; COUNT 0 sends
(paced, about 50,000 a second at most) until SIGTERM, then flushes and exits. Exits non-zero on a
delivery error unless --tolerate-errors (for a broker killed under it).

usage: confluent_produce.py BOOTSTRAP TOPIC PARTITIONS COUNT ACKED_FILE [--tolerate-errors]
                            [--compression=CODEC] [--batch-size=BYTES]"""

import signal
import sys
import time

from confluent_kafka import Producer

from common import Deadline, check, fail, headers, key, value

bootstrap, topic = sys.argv[1], sys.argv[2]
partitions, count, acked_path = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
tolerate_errors = "--tolerate-errors" in sys.argv[6:]
compression = next((a.split("=", 1)[1] for a in sys.argv[6:] if a.startswith("--compression=")), "none")
batch_size = next((int(a.split("=", 1)[1]) for a in sys.argv[6:] if a.startswith("--batch-size=")), 1000000)

producer = Producer({
    "bootstrap.servers": bootstrap,
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 2,
    "message.timeout.ms": 30000,
    "queue.buffering.max.messages": 20000,
    "compression.type": compression,
    "batch.size": batch_size,
})
acked = open(acked_path, "w", buffering=1)
errors = []


def on_delivery(err, msg):
    if err is not None:
        errors.append(str(err))
        if not tolerate_errors:
            fail(f"delivery error: {err}")
    else:
        acked.write(f"{msg.partition()} {msg.offset()} {int(msg.key()[4:])}\n")
        acked.flush()


stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(True))

i = 0
deadline = Deadline(180, "producing")
while (count == 0 and not stop) or i < count:
    if count == 0 and i % 100 == 0:
        time.sleep(0.002)
    try:
        producer.produce(topic, value=value(i), key=key(i), partition=i % partitions,
                         headers=headers(i), on_delivery=on_delivery)
        i += 1
    except BufferError:
        producer.poll(0.05)
        deadline.check()
    producer.poll(0)
remaining = producer.flush(60)
check(remaining == 0, f"{remaining} messages undelivered after flush")
check(tolerate_errors or not errors, f"delivery errors: {errors[:5]}")
print(f"produced {i} messages", flush=True)
print("OK", flush=True)
