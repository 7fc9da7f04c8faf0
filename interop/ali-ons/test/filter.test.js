'use strict';
// npm ali-ons 3.12.0 against `rmq standalone` with enablePropertyFilter=true: on one topic, a
// tag consumer (`TagA`) and an SQL92 consumer (ali-ons subscribes with
// `{ expressionType: 'SQL92', subString }`, sent in heartbeats and in every pull header) run
// side by side in two groups; each receives exactly its messages. ali-ons filters tags on the
// client too, but never SQL92: the SQL92 consumer's selection is the broker's alone.
// Run with `node --test interop/ali-ons/` and RMQ_BIN set.

const assert = require('node:assert/strict');
const { after, before, describe, test } = require('node:test');
const { Producer, Consumer, Message } = require('ali-ons');
const {
  freshDir, standaloneMode, runToken, startRmq, createTopic, waitRoute, waitUntil,
} = require('../lib/harness');

after(() => { setTimeout(() => process.exit(), 1000).unref(); });

const TEST_TIMEOUT_MS = 60000;
const CONSUME_TIMEOUT_MS = 25000;
const SETTLE_MS = 2000;
const N = 30;
const SQL = 'n >= 10 AND n < 20 AND color IS NOT NULL';

const httpclient = { request() { throw new Error('no HTTP address server in these tests'); } };
const quietLogger = { info() {}, warn() {}, error: console.error, debug() {} };
let instances = 0;
function clientOptions(namesrv) {
  return {
    httpclient,
    nameSrv: [ namesrv ],
    logger: process.env.VERBOSE ? console : quietLogger,
    instanceName: `ali-ons-filter-${process.pid}-${instances++}`,
  };
}

function tagOf(i) { return [ 'TagA', 'TagB', 'TagC' ][i % 3]; }

async function startConsumer(namesrv, group, topic, expression) {
  const consumer = new Consumer({
    ...clientOptions(namesrv), consumerGroup: group, consumeFromWhere: 'CONSUME_FROM_FIRST_OFFSET',
  });
  const errors = [];
  consumer.on('error', err => errors.push(err.message));
  const received = [];
  await consumer.ready();
  consumer.subscribe(topic, expression, async msg => {
    received.push({ body: msg.body.toString(), tags: msg.tags, n: msg.properties.n });
  });
  return { consumer, received, errors };
}

describe('ali-ons: tag and SQL92 consumers on one topic', () => {
  let server;
  const token = runToken();

  before(async () => {
    server = await startRmq(standaloneMode(freshDir('ali-ons-filter'), [ 'enablePropertyFilter=true' ]));
  });
  after(async () => {
    if (server) await server.stop();
  });

  test('each consumer gets exactly its messages', { timeout: TEST_TIMEOUT_MS }, async () => {
    const topic = `AliFilter_${token}`;
    await createTopic(server.addrs.broker, server.namesrv, topic);
    const producer = new Producer({
      ...clientOptions(server.namesrv), producerGroup: `ali_filter_pg_${token}`, sendMsgTimeout: 3000, retryTimesWhenSendFailed: 0,
    });
    await producer.ready();
    try {
      for (let i = 0; i < N; i++) {
        const msg = new Message(topic, tagOf(i), `f-${i}`);
        msg.properties.n = String(i);
        if (i % 2 === 0) msg.properties.color = 'red';
        const r = await producer.send(msg);
        assert.equal(r.sendStatus, 'SEND_OK');
      }
    } finally {
      await producer.close();
    }
    await waitRoute(server.namesrv, topic);
    const wantTag = new Set();
    const wantSql = new Set();
    for (let i = 0; i < N; i++) {
      if (tagOf(i) === 'TagA') wantTag.add(`f-${i}`);
      if (i >= 10 && i < 20 && i % 2 === 0) wantSql.add(`f-${i}`);
    }
    const tag = await startConsumer(server.namesrv, `ali_filter_tag_${token}`, topic, 'TagA');
    const sql = await startConsumer(server.namesrv, `ali_filter_sql_${token}`, topic, { expressionType: 'SQL92', subString: SQL });
    const bodies = c => new Set(c.received.map(r => r.body));
    const all = await waitUntil(CONSUME_TIMEOUT_MS, () => bodies(tag).size >= wantTag.size && bodies(sql).size >= wantSql.size);
    await new Promise(r => setTimeout(r, SETTLE_MS));
    await tag.consumer.close();
    await sql.consumer.close();
    assert.ok(all, `tag got ${bodies(tag).size}/${wantTag.size}, sql got ${bodies(sql).size}/${wantSql.size}; errors: ${[ ...tag.errors, ...sql.errors ].slice(0, 3)}`);
    assert.deepEqual([ ...bodies(tag) ].sort(), [ ...wantTag ].sort(), 'tag consumer: exactly TagA');
    assert.deepEqual([ ...bodies(sql) ].sort(), [ ...wantSql ].sort(), 'SQL92 consumer: exactly the matching messages');
    for (const r of sql.received) assert.ok(Number(r.n) >= 10 && Number(r.n) < 20, `${r.body}: n=${r.n}`);
  });
});
