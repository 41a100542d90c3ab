// KafkaJS consumer group: a producer writes COUNT messages over the partitions; a consumer in
// GROUP (subscribe fromBeginning + run eachMessage, auto-commit after each batch) reads each
// exactly once; admin.fetchOffsets then shows every partition committed at its log end, and
// describeGroups the group Stable with that member. After it disconnects (LeaveGroup) the group
// is Empty; a second consumer in the group reads only the messages produced since, starting at
// the committed offsets. Finally admin.deleteGroups removes the group and its offsets.
//
// usage: node kafkajs_group.js BOOTSTRAP TOPIC PARTITIONS GROUP COUNT
'use strict'

// Partitions are explicit: the v2 partitioner warning is noise here.
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'
const { Kafka, logLevel } = require('kafkajs')

const [bootstrap, topic, partitionsArg, groupId, countArg] = process.argv.slice(2)
const partitions = Number(partitionsArg)
const count = Number(countArg)

function fail (message) {
  console.error(`FAIL: ${message}`)
  process.exit(1)
}

function check (condition, message) {
  if (!condition) fail(message)
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// The same content as tests/python/common.py.
const pad = (n, width) => String(n).padStart(width, '0')
const key = (i) => `key-${pad(i, 6)}`
const value = (i) => `value-${pad(i, 6)}-` + 'v'.repeat(i % 113)

const kafka = new Kafka({
  clientId: 'riffle-tests-kafkajs-group',
  brokers: [bootstrap],
  logLevel: logLevel.WARN,
  retry: { retries: 5 }
})
const admin = kafka.admin()
// "partition offset" -> i, for everything produced
const produced = new Map()
let nextI = 0

async function produce (n) {
  const producer = kafka.producer({ allowAutoTopicCreation: false })
  await producer.connect()
  const messages = []
  for (let i = nextI; i < nextI + n; i++) {
    messages.push({ key: key(i), value: value(i), partition: i % partitions })
  }
  const results = await producer.send({ topic, acks: -1, messages })
  const base = new Map(results.map((r) => [r.partition, BigInt(r.baseOffset)]))
  const seen = new Map()
  for (let i = nextI; i < nextI + n; i++) {
    const p = i % partitions
    const k = seen.get(p) || 0n
    seen.set(p, k + 1n)
    produced.set(`${p} ${base.get(p) + k}`, i)
  }
  await producer.disconnect()
  const first = nextI
  nextI += n
  return new Set(Array.from({ length: n }, (_, k) => first + k))
}

async function logEnds () {
  const ends = {}
  for (const o of await admin.fetchTopicOffsets(topic)) ends[o.partition] = Number(o.high)
  return ends
}

async function committed () {
  const [t] = await admin.fetchOffsets({ groupId, topics: [topic] })
  check(t.topic === topic, `fetchOffsets answered for ${t.topic}`)
  const offsets = {}
  for (const p of t.partitions) offsets[p.partition] = Number(p.offset)
  return offsets
}

// Waits (bounded) until the committed offsets equal the log ends.
async function waitCommittedAtEnds (what) {
  const ends = await logEnds()
  const deadline = Date.now() + 10000
  for (;;) {
    const got = await committed()
    if (JSON.stringify(got) === JSON.stringify(ends)) return got
    if (Date.now() > deadline) fail(`${what}: committed ${JSON.stringify(got)}, want the log ends ${JSON.stringify(ends)}`)
    await sleep(200)
  }
}

async function waitState (want, seconds) {
  const deadline = Date.now() + seconds * 1000
  for (;;) {
    const { groups: [g] } = await admin.describeGroups([groupId])
    if (g.state === want) return g
    if (Date.now() > deadline) fail(`describeGroups: state ${g.state}, want ${want} within ${seconds} s`)
    await sleep(100)
  }
}

// One consumer in the group reads until it has `want` (a Set of indexes); every message must be
// one of them, read once. Returns the consumer, still running.
async function consumeExactly (name, want, got) {
  const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 1000, maxWaitTimeInMs: 500 })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  let done
  const finished = new Promise((resolve) => { done = resolve })
  let read = 0
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      const where = `partition ${partition} offset ${message.offset}`
      const i = produced.get(`${partition} ${message.offset}`)
      check(i !== undefined, `${name}: ${where} was never produced`)
      check(want.has(i), `${name}: ${where} (message ${i}) was consumed before by this group and committed`)
      check(!got.has(i), `${name}: message ${i} (${where}) read twice`)
      check(message.key.toString() === key(i) && message.value.toString() === value(i), `${name}: ${where}: content differs`)
      got.add(i)
      read++
      if (read === want.size) done()
    }
  })
  const timer = setTimeout(() => fail(`${name}: read ${read} of ${want.size} messages within 30 s`), 30000)
  await finished
  clearTimeout(timer)
  return consumer
}

async function main () {
  await admin.connect()
  const first = await produce(count)
  const got = new Set()
  const one = await consumeExactly('first consumer', first, got)
  const offsets = await waitCommittedAtEnds('after the first consumer')
  console.log(`first consumer read ${count} messages once; committed ${JSON.stringify(offsets)}`)

  const stable = await waitState('Stable', 5)
  check(stable.protocolType === 'consumer', `describeGroups protocolType ${stable.protocolType}`)
  check(stable.members.length === 1 && stable.members[0].clientId === 'riffle-tests-kafkajs-group',
    `describeGroups members ${JSON.stringify(stable.members.map((m) => m.clientId))}`)
  const { groups } = await admin.listGroups()
  check(groups.some((g) => g.groupId === groupId && g.protocolType === 'consumer'),
    `listGroups ${JSON.stringify(groups)} lacks ${groupId}`)

  await one.disconnect()
  await waitState('Empty', 4)
  console.log('the group is Empty after the consumer disconnected')

  const second = await produce(Math.floor(count / 4))
  const two = await consumeExactly('second consumer', second, got)
  await waitCommittedAtEnds('after the second consumer')
  await two.disconnect()
  console.log(`second consumer resumed at the committed offsets and read only the ${second.size} new messages`)

  await waitState('Empty', 4)
  const deleted = await admin.deleteGroups([groupId])
  check(deleted.length === 1 && deleted[0].errorCode === 0, `deleteGroups ${JSON.stringify(deleted)}`)
  const gone = await committed()
  check(Object.values(gone).every((o) => o === -1), `offsets of the deleted group: ${JSON.stringify(gone)}`)
  await admin.disconnect()
  console.log('deleteGroups removed the group and its offsets')
  console.log('OK')
}

const timer = setTimeout(() => fail('timed out after 100 s'), 100000)
main().then(() => { clearTimeout(timer); process.exit(0) }, (e) => fail(e.stack || String(e)))
