'use strict';
// npm ali-ons 3.12.0 with `accessKey`/`secretKey` against `rmq standalone` with aclEnable=true
// and a plain_acl.yml (RocketMQ 4.x format): a permitted account produces and consumes; a wrong
// secret and a topic without PUB are refused with NO_PERMISSION (16) and a remark saying why;
// a change to the file is picked up without a restart. ali-ons signs every request itself
// (HMAC-SHA1 over the sorted header values and the body); nothing here signs for it except the
// admin topic creation, which ali-ons has no API for.

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { after, before, describe, test } = require('node:test');
const { Producer, Consumer, Message } = require('ali-ons');
const {
  freshDir, standaloneMode, runToken, startRmq, waitRoute, waitUntil, remotingRequest,
} = require('../lib/harness');

after(() => { setTimeout(() => process.exit(), 1000).unref(); });

const TEST_TIMEOUT_MS = 60000;
const CONSUME_TIMEOUT_MS = 25000;
/** Longest wait for the broker to pick up a rewritten ACL file (it polls every second). */
const RELOAD_TIMEOUT_MS = 20000;
/** Response code NO_PERMISSION. */
const NO_PERMISSION = 16;
/** Request code UPDATE_AND_CREATE_TOPIC (admin only). */
const UPDATE_AND_CREATE_TOPIC = 17;

const PRODUCER = { accessKey: 'aliProducer', secretKey: 'ali-producer-secret' };
const ADMIN = { accessKey: 'aliAdmin01', secretKey: 'ali-admin-secret' };

const httpclient = { request() { throw new Error('no HTTP address server in these tests'); } };
const quietLogger = { info() {}, warn() {}, error() {}, debug() {} };
let instances = 0;
function clientOptions(namesrv, credentials) {
  return {
    httpclient,
    nameSrv: [ namesrv ],
    logger: process.env.VERBOSE ? console : quietLogger,
    instanceName: `ali-ons-acl-${process.pid}-${instances++}`,
    ...credentials,
  };
}

/** plain_acl.yml: PRODUCER may use `open` fully and only subscribe to `readOnly`. */
function aclYaml(open, readOnly, readOnlyPerm = 'SUB') {
  return [
    'globalWhiteRemoteAddresses:',
    'accounts:',
    `  - accessKey: ${PRODUCER.accessKey}`,
    `    secretKey: ${PRODUCER.secretKey}`,
    '    whiteRemoteAddress:',
    '    admin: false',
    '    defaultTopicPerm: DENY',
    '    defaultGroupPerm: SUB',
    '    topicPerms:',
    `      - ${open}=PUB|SUB`,
    `      - ${readOnly}=${readOnlyPerm}`,
    `  - accessKey: ${ADMIN.accessKey}`,
    `    secretKey: ${ADMIN.secretKey}`,
    '    admin: true',
    '',
  ].join('\n');
}

function writeAcl(file, text) {
  fs.writeFileSync(`${file}.partial`, text);
  fs.renameSync(`${file}.partial`, file);
}

/** The RocketMQ 4.x ACL signature: HMAC-SHA1 (base64) over the values sorted by key. */
function sign(extFields, { accessKey, secretKey }) {
  const fields = { ...extFields, AccessKey: accessKey };
  const content = Object.keys(fields).sort().map(k => fields[k]).join('');
  return { ...fields, Signature: crypto.createHmac('sha1', secretKey).update(content, 'utf8').digest('base64') };
}

function createTopicFields(topic) {
  return {
    topic, defaultTopic: 'TBW102', readQueueNums: '4', writeQueueNums: '4', perm: '6',
    topicFilterType: 'SINGLE_TAG', topicSysFlag: '0', order: 'false',
  };
}

async function createTopicAsAdmin(server, topic) {
  const response = await remotingRequest(server.addrs.broker, UPDATE_AND_CREATE_TOPIC, sign(createTopicFields(topic), ADMIN));
  assert.equal(response.code, 0, `create ${topic}: ${response.remark}`);
  await waitRoute(server.namesrv, topic);
}

/**
 * A producer whose broker-side failures are recorded: ali-ons retries a NO_PERMISSION send
 * and then throws a generic "still failed" error, so the broker's own answer (code and remark)
 * is taken where the client gets it.
 */
async function recordingProducer(namesrv, group, credentials) {
  const producer = new Producer({
    ...clientOptions(namesrv, credentials), producerGroup: group, sendMsgTimeout: 3000, retryTimesWhenSendFailed: 0,
  });
  const refusals = [];
  const sendKernelImpl = producer.sendKernelImpl.bind(producer);
  producer.sendKernelImpl = async (...args) => {
    try {
      return await sendKernelImpl(...args);
    } catch (err) {
      refusals.push({ code: err.code, message: err.message });
      throw err;
    }
  };
  producer.on('error', () => {});
  await producer.ready();
  return { producer, refusals };
}

async function sendRefused(namesrv, group, credentials, topic) {
  const { producer, refusals } = await recordingProducer(namesrv, group, credentials);
  try {
    await assert.rejects(producer.send(new Message(topic, 'TagA', 'refused')));
  } finally {
    // With a wrong secret the UNREGISTER_CLIENT of close() is refused too.
    await producer.close().catch(err => refusals.push({ code: err.code, message: err.message }));
  }
  assert.ok(refusals.length > 0, 'the broker answered the send');
  return refusals[0];
}

describe('ali-ons with ACL against rmq standalone', () => {
  let server;
  let aclFile;
  const token = runToken();
  const open = `AclOpen_${token}`;
  const readOnly = `AclReadOnly_${token}`;

  before(async () => {
    const dir = freshDir('ali-ons-acl');
    aclFile = path.join(dir, 'plain_acl.yml');
    writeAcl(aclFile, aclYaml(open, readOnly));
    server = await startRmq(standaloneMode(dir, [ 'aclEnable=true', `aclFile=${aclFile}` ]));
    await createTopicAsAdmin(server, open);
    await createTopicAsAdmin(server, readOnly);
  });
  after(async () => {
    if (server) await server.stop();
  });

  test('a permitted account produces and consumes', { timeout: TEST_TIMEOUT_MS }, async () => {
    const N = 10;
    const { producer, refusals } = await recordingProducer(server.namesrv, `acl_pg_${token}`, PRODUCER);
    const bodies = Array.from({ length: N }, (_, i) => `acl-${i}`);
    try {
      for (const body of bodies) {
        const result = await producer.send(new Message(open, 'TagA', body));
        assert.equal(result.sendStatus, 'SEND_OK', body);
      }
    } finally {
      await producer.close();
    }
    assert.deepEqual(refusals, []);

    const consumer = new Consumer({
      ...clientOptions(server.namesrv, PRODUCER), consumerGroup: `acl_cg_${token}`, consumeFromWhere: 'CONSUME_FROM_FIRST_OFFSET',
    });
    const errors = [];
    consumer.on('error', err => errors.push(err.message));
    const received = new Set();
    await consumer.ready();
    consumer.subscribe(open, '*', async msg => { received.add(msg.body.toString()); });
    const all = await waitUntil(CONSUME_TIMEOUT_MS, () => bodies.every(b => received.has(b)));
    await consumer.close();
    assert.ok(all, `consumed ${received.size}/${N}; client errors: ${errors.slice(0, 3)}`);
  });

  test('a wrong secret is refused with NO_PERMISSION', { timeout: TEST_TIMEOUT_MS }, async () => {
    const refusal = await sendRefused(server.namesrv, `acl_pg_wrong_${token}`,
      { accessKey: PRODUCER.accessKey, secretKey: 'not-the-secret' }, open);
    assert.equal(refusal.code, NO_PERMISSION);
    assert.match(refusal.message, /Check signature failed for accessKey=aliProducer/);
  });

  test('a topic without PUB is refused, then allowed after the ACL file changes', { timeout: TEST_TIMEOUT_MS }, async () => {
    const refusal = await sendRefused(server.namesrv, `acl_pg_ro_${token}`, PRODUCER, readOnly);
    assert.equal(refusal.code, NO_PERMISSION);
    assert.match(refusal.message, new RegExp(`No permission for topic:${readOnly}: the request needs PUB`));

    writeAcl(aclFile, aclYaml(open, readOnly, 'PUB|SUB'));
    const { producer } = await recordingProducer(server.namesrv, `acl_pg_reload_${token}`, PRODUCER);
    let status;
    try {
      const deadline = Date.now() + RELOAD_TIMEOUT_MS;
      while (status !== 'SEND_OK' && Date.now() < deadline) {
        try {
          status = (await producer.send(new Message(readOnly, 'TagA', 'after-reload'))).sendStatus;
        } catch (err) {
          status = err.message;
          await new Promise(r => setTimeout(r, 200));
        }
      }
      assert.equal(status, 'SEND_OK', 'send after the reload');
    } finally {
      await producer.close();
    }
  });
});
