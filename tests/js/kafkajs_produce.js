// KafkaJS (pure JavaScript, a third client implementation): admin creates a topic and reads its
// metadata; a producer with acks=-1 sends COUNT messages over the partitions and writes every
// acknowledged one to ACKED_FILE as "partition offset i" (confluent_verify.py then reads them
// back); the high watermarks must match. Exits non-zero with a message on any mismatch.
//
// usage: node kafkajs_produce.js BOOTSTRAP TOPIC PARTITIONS COUNT ACKED_FILE
'use strict'

const fs = require('fs')
const { Kafka, logLevel } = require('kafkajs')

const [bootstrap, topic, partitionsArg, countArg, ackedPath] = process.argv.slice(2)
const partitions = Number(partitionsArg)
const count = Number(countArg)
const CHUNK = 500

function fail (message) {
  console.error(`FAIL: ${message}`)
  process.exit(1)
}

function check (condition, message) {
  if (!condition) fail(message)
}

// The same content as tests/python/common.py.
const pad = (n, width) => String(n).padStart(width, '0')
const key = (i) => `key-${pad(i, 6)}`
const value = (i) => `value-${pad(i, 6)}-` + 'v'.repeat(i % 113)
const headers = (i) => ({ seq: String(i), parity: i % 2 ? 'odd' : 'even' })

async function main () {
  const kafka = new Kafka({
    clientId: 'riffle-tests-kafkajs',
    brokers: [bootstrap],
    logLevel: logLevel.WARN,
    retry: { retries: 3 }
  })
  const admin = kafka.admin()
  await admin.connect()
  const created = await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true })
  check(created === true, `createTopics returned ${created}`)
  const listed = await admin.listTopics()
  check(listed.includes(topic), `listTopics ${JSON.stringify(listed)} lacks ${topic}`)
  const md = await admin.fetchTopicMetadata({ topics: [topic] })
  check(md.topics[0].partitions.length === partitions,
    `fetchTopicMetadata: ${md.topics[0].partitions.length} partitions, want ${partitions}`)

  const producer = kafka.producer({ allowAutoTopicCreation: false })
  await producer.connect()
  const acked = []
  for (let start = 0; start < count; start += CHUNK) {
    const end = Math.min(count, start + CHUNK)
    const messages = []
    for (let i = start; i < end; i++) {
      messages.push({ key: key(i), value: value(i), partition: i % partitions, headers: headers(i) })
    }
    const results = await producer.send({ topic, acks: -1, messages })
    const base = new Map(results.map((r) => {
      check(r.errorCode === 0, `produce error ${r.errorCode} on partition ${r.partition}`)
      return [r.partition, BigInt(r.baseOffset)]
    }))
    const seen = new Map()
    for (let i = start; i < end; i++) {
      const p = i % partitions
      const n = seen.get(p) || 0n
      seen.set(p, n + 1n)
      check(base.has(p), `no produce result for partition ${p}`)
      acked.push(`${p} ${base.get(p) + n} ${i}\n`)
    }
  }
  await producer.disconnect()
  fs.writeFileSync(ackedPath, acked.join(''))

  const offsets = await admin.fetchTopicOffsets(topic)
  for (const o of offsets) {
    const p = Number(o.partition)
    const want = Math.floor(count / partitions) + (p < count % partitions ? 1 : 0)
    check(Number(o.high) === want, `partition ${p}: high watermark ${o.high}, want ${want}`)
    check(Number(o.low) === 0, `partition ${p}: low watermark ${o.low}, want 0`)
  }
  await admin.disconnect()
  console.log(`produced ${count} messages with KafkaJS`)
  console.log('OK')
}

const timer = setTimeout(() => fail('timed out after 120 s'), 120000)
main().then(() => clearTimeout(timer), (e) => fail(e.stack || String(e)))
