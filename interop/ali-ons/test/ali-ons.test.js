'use strict';
// npm ali-ons 3.12.0 (pure JavaScript, JSON remoting headers, SEND_MESSAGE_V2 with short header
// names, no UNIQ_KEY of its own) against `rmq standalone`: produce N messages and consume
// them all with a push consumer; a `TagA || TagB` subscription; and the client against a
// brokerless NameServer. Run with `node --test interop/ali-ons/` and RMQ_BIN set.
// ali-ons cannot auto-create topics (it throws on TOPIC_NOT_EXIST instead of borrowing the
// TBW102 route), so each topic is first created the way mqadmin does it.

const assert = require('node:assert/strict');
const { after, before, describe, test } = require('node:test');
const { Producer, Consumer, Message } = require('ali-ons');
const {
  TOPIC_NOT_EXIST, freshDir, standaloneMode, runToken, startRmq, routeCode, createTopic, waitRoute, waitUntil, decodeOffsetMsgId,
} = require('../lib/harness');

// ali-ons keeps timers and sockets alive after close(); once every test and hook has run,
// exit instead of waiting on them (the runner still sees each result and the exit code).
after(() => { setTimeout(() => process.exit(), 1000).unref(); });

/** Per-test budget; each test finishes well inside it or fails. */
const TEST_TIMEOUT_MS = 60000;
/** How long a consumer may take to receive everything. */
const CONSUME_TIMEOUT_MS = 25000;
/** Extra wait after everything arrived, to catch duplicates and strays. */
const SETTLE_MS = 2000;

// httpclient is asserted by ali-ons' constructor but only used with an HTTP address server.
const httpclient = { request() { throw new Error('no HTTP address server in these tests'); } };
const quietLogger = { info() {}, warn() {}, error: console.error, debug() {} };
let instances = 0;
function clientOptions(namesrv) {
  return {
    httpclient,
    nameSrv: [ namesrv ],
    logger: process.env.VERBOSE ? console : quietLogger,
    // One MQClient per producer/consumer: ali-ons shares clients by instance name.
    instanceName: `ali-ons-interop-${process.pid}-${instances++}`,
  };
}

async function produce(namesrv, group, topic, specs) {
  const producer = new Producer({
    ...clientOptions(namesrv), producerGroup: group, sendMsgTimeout: 3000, retryTimesWhenSendFailed: 0,
  });
  await producer.ready();
  const results = [];
  try {
    for (const { tag, body } of specs) {
      const msg = new Message(topic, tag, body);
      msg.keys = [ body ];
      const r = await producer.send(msg);
      // ali-ons hands back the response header's strings as they came (queueId is a string).
      results.push({ tag, body, sendStatus: r.sendStatus, msgId: r.msgId, queueId: Number(r.messageQueue.queueId), queueOffset: Number(r.queueOffset) });
    }
  } finally {
    await producer.close();
  }
  return results;
}

/** Consumes topic with a fresh group until `expected` bodies arrived (then settles). */
async function consume(namesrv, group, topic, expression, expected) {
  await waitRoute(namesrv, topic);
  const consumer = new Consumer({
    ...clientOptions(namesrv), consumerGroup: group, consumeFromWhere: 'CONSUME_FROM_FIRST_OFFSET',
  });
  const errors = [];
  consumer.on('error', err => errors.push(err.message));
  const received = [];
  await consumer.ready();
  consumer.subscribe(topic, expression, async msg => {
    received.push({
      body: msg.body.toString(), tags: msg.tags, msgId: msg.msgId, queueId: msg.queueId,
      queueOffset: Number(msg.queueOffset), uniqKey: msg.properties.UNIQ_KEY,
    });
  });
  const distinct = () => new Set(received.map(r => r.body).filter(b => expected.has(b))).size;
  const all = await waitUntil(CONSUME_TIMEOUT_MS, () => distinct() >= expected.size);
  await new Promise(r => setTimeout(r, SETTLE_MS));
  await consumer.close();
  assert.ok(all, `consumer ${group} got ${distinct()}/${expected.size} within ${CONSUME_TIMEOUT_MS} ms; client errors: ${errors.slice(0, 3)}`);
  return received;
}

function countBodies(received) {
  const counts = new Map();
  for (const r of received) counts.set(r.body, (counts.get(r.body) || 0) + 1);
  return counts;
}

describe('ali-ons against rmq standalone', () => {
  let server;
  const token = runToken();

  before(async () => {
    server = await startRmq(standaloneMode(freshDir('ali-ons-standalone')));
  });
  after(async () => {
    if (server) await server.stop();
  });

  test('produce and consume with default JSON headers', { timeout: TEST_TIMEOUT_MS }, async () => {
    const N = 30;
    const topic = `AliOns_${token}`;
    const specs = Array.from({ length: N }, (_, i) => ({ tag: 'TagA', body: `ali-${i}` }));
    await createTopic(server.addrs.broker, server.namesrv, topic);
    const sent = await produce(server.namesrv, `ali_pg_${token}`, topic, specs);

    assert.equal(sent.length, N);
    const perQueue = new Map();
    const lastPhysical = new Map();
    for (const s of sent) {
      assert.equal(s.sendStatus, 'SEND_OK', `${s.body}: status`);
      // ali-ons' msgId is the broker's offset message id: store host = brokerIP1:listenPort.
      const decoded = decodeOffsetMsgId(s.msgId);
      assert.ok(decoded, `${s.body}: msgId ${s.msgId} is an IPv4 offset message id`);
      assert.equal(decoded.host, server.addrs.broker, `${s.body}: store host in msgId`);
      // Within a queue, later messages sit later in the log. (Across queues there is no order
      // to check: rmq keeps one commit log per shard and puts the shard in the top byte.)
      const last = lastPhysical.get(s.queueId);
      assert.ok(last === undefined || decoded.offset > last, `${s.body}: commit-log offsets increase within queue ${s.queueId}`);
      lastPhysical.set(s.queueId, decoded.offset);
      perQueue.set(s.queueId, [ ...(perQueue.get(s.queueId) || []), s.queueOffset ]);
    }
    assert.equal(new Set(sent.map(s => s.msgId)).size, N, 'offset msgIds distinct');
    for (const [ queueId, offsets ] of perQueue) {
      assert.ok(queueId >= 0 && queueId < 4, `auto-created topic has 4 queues, got ${queueId}`);
      assert.deepEqual(offsets, offsets.map((_, i) => i), `queue ${queueId}: offsets 0..n in send order`);
    }
    assert.ok(perQueue.size >= 2, `sends spread over queues: ${[ ...perQueue.keys() ]}`);

    const expected = new Set(specs.map(s => s.body));
    const received = await consume(server.namesrv, `ali_cg_${token}`, topic, '*', expected);
    const counts = countBodies(received);
    assert.deepEqual([ ...counts.keys() ].sort(), [ ...expected ].sort(), 'exactly the sent messages');
    for (const [ body, n ] of counts) assert.equal(n, 1, `${body} received ${n} times`);
    for (const r of received) {
      const s = sent.find(x => x.body === r.body);
      assert.equal(r.tags, 'TagA', `${r.body}: tag`);
      assert.equal(r.queueId, s.queueId, `${r.body}: queue`);
      assert.equal(r.queueOffset, s.queueOffset, `${r.body}: queue offset`);
      assert.equal(r.msgId.toUpperCase(), s.msgId.toUpperCase(), `${r.body}: msgId from the stored store host and offset`);
      // ali-ons sets no UNIQ_KEY; a broker adds one to every message it stores (PROTOCOL.md §4.1 step 6).
      assert.ok(r.uniqKey, `${r.body}: broker-assigned UNIQ_KEY`);
    }
    assert.equal(new Set(received.map(r => r.uniqKey)).size, N, 'UNIQ_KEYs distinct');
  });

  test('subscription "TagA || TagB" delivers no TagC', { timeout: TEST_TIMEOUT_MS }, async () => {
    const N = 30;
    const topic = `AliOnsTags_${token}`;
    const tags = [ 'TagA', 'TagB', 'TagC' ];
    const specs = Array.from({ length: N }, (_, i) => ({ tag: tags[i % 3], body: `${tags[i % 3]}-${i}` }));
    await createTopic(server.addrs.broker, server.namesrv, topic);
    const sent = await produce(server.namesrv, `ali_pg_tags_${token}`, topic, specs);
    assert.ok(sent.every(s => s.sendStatus === 'SEND_OK'), 'all SEND_OK');

    const expected = new Set(specs.filter(s => s.tag !== 'TagC').map(s => s.body));
    const received = await consume(server.namesrv, `ali_cg_tags_${token}`, topic, 'TagA || TagB', expected);
    assert.deepEqual(received.filter(r => r.tags === 'TagC'), [], 'no TagC delivered');
    const counts = countBodies(received);
    assert.deepEqual([ ...counts.keys() ].sort(), [ ...expected ].sort(), 'exactly TagA and TagB');
    for (const [ body, n ] of counts) assert.equal(n, 1, `${body} received ${n} times`);
  });
});

describe('ali-ons against a brokerless rmq namesrv', () => {
  test('route lookups fail cleanly', { timeout: TEST_TIMEOUT_MS }, async () => {
    const server = await startRmq({ namesrv: { dir: freshDir('ali-ons-namesrv') } });
    try {
      assert.equal(await routeCode(server.namesrv, 'TBW102'), TOPIC_NOT_EXIST, 'no broker registered TBW102');
      const producer = new Producer({
        ...clientOptions(server.namesrv), producerGroup: `ali_pg_ns_${runToken()}`, sendMsgTimeout: 3000, retryTimesWhenSendFailed: 0,
      });
      producer.on('error', () => {}); // route errors are also emitted; the rejection is what we check
      await producer.ready();
      const started = Date.now();
      await assert.rejects(producer.send(new Message(`NoSuchTopic_${runToken()}`, 'TagA', 'x')), /route|topic/i);
      assert.ok(Date.now() - started < 15000, 'the error comes promptly');
      await producer.close();
    } finally {
      await server.stop();
    }
  });
});
