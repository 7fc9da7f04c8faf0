'use strict';
// npm ali-ons 3.12.0 timer messages against `rmq standalone` (1 and 2 shards):
// Message.setStartDeliverTime(ms) sends the ONS property __STARTDELIVERTIME; the broker holds
// the message on its timing wheel and delivers it to its real queue at that time, once.
// Run with `node --test interop/ali-ons/` and RMQ_BIN set.

const assert = require('node:assert/strict');
const { after, describe, test } = require('node:test');
const { Producer, Consumer, Message } = require('ali-ons');
const { freshDir, standaloneMode, runToken, startRmq, createTopic, waitRoute, waitUntil } = require('../lib/harness');

after(() => { setTimeout(() => process.exit(), 1000).unref(); });

const TEST_TIMEOUT_MS = 60000;
const CONSUME_TIMEOUT_MS = 25000;
const SETTLE_MS = 2000;
/** How far ahead each timer is due. */
const DELAY_MS = 3000;

const httpclient = { request() { throw new Error('no HTTP address server in these tests'); } };
const quietLogger = { info() {}, warn() {}, error: console.error, debug() {} };
let instances = 0;
function clientOptions(namesrv) {
  return {
    httpclient,
    nameSrv: [ namesrv ],
    logger: process.env.VERBOSE ? console : quietLogger,
    instanceName: `ali-ons-timer-${process.pid}-${instances++}`,
  };
}

for (const shards of [ 1, 2 ]) {
  describe(`ali-ons timers against rmq standalone, ${shards} shard(s)`, () => {
    test('__STARTDELIVERTIME is delivered once, not before its time', { timeout: TEST_TIMEOUT_MS }, async () => {
      const server = await startRmq(standaloneMode(freshDir(`ali-ons-timer-${shards}`), [ `shards=${shards}` ]));
      try {
        const token = runToken();
        const topic = `AliOnsTimer_${shards}_${token}`;
        await createTopic(server.addrs.broker, server.namesrv, topic);
        const producer = new Producer({
          ...clientOptions(server.namesrv), producerGroup: `ali_pg_timer_${token}`, sendMsgTimeout: 3000, retryTimesWhenSendFailed: 0,
        });
        await producer.ready();
        const due = new Map();
        try {
          for (let i = 0; i < 8; i++) {
            const body = `timer-${i}`;
            const msg = new Message(topic, 'TagT', body);
            const at = Date.now() + DELAY_MS;
            msg.setStartDeliverTime(at);
            const r = await producer.send(msg);
            assert.equal(r.sendStatus, 'SEND_OK', `${body}: status`);
            due.set(body, at);
          }
        } finally {
          await producer.close();
        }
        await waitRoute(server.namesrv, topic);
        const consumer = new Consumer({
          ...clientOptions(server.namesrv), consumerGroup: `ali_cg_timer_${token}`, consumeFromWhere: 'CONSUME_FROM_FIRST_OFFSET',
        });
        consumer.on('error', () => {});
        const received = [];
        await consumer.ready();
        consumer.subscribe(topic, '*', async msg => {
          received.push({ body: msg.body.toString(), at: Date.now(), storeTimestamp: Number(msg.storeTimestamp), props: msg.properties });
        });
        const all = await waitUntil(CONSUME_TIMEOUT_MS, () => new Set(received.map(r => r.body)).size >= due.size);
        await new Promise(r => setTimeout(r, SETTLE_MS));
        await consumer.close();
        assert.ok(all, `got ${received.length}/${due.size}`);
        assert.equal(received.length, due.size, 'each timer once');
        for (const r of received) {
          const at = due.get(r.body);
          assert.ok(at, `${r.body} was sent`);
          assert.ok(r.storeTimestamp >= at, `${r.body}: stored at ${r.storeTimestamp}, due ${at}`);
          assert.ok(r.props.TIMER_OUT_MS, `${r.body}: TIMER_OUT_MS`);
        }
      } finally {
        await server.stop();
      }
    });
  });
}
