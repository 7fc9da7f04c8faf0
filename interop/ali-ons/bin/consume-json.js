'use strict';
// An ali-ons push consumer as a command for other test suites (the rocketmq-client-rust
// replication tests run it inside a network namespace with `ip netns exec`):
//   node consume-json.js NAMESRV TOPIC GROUP EXPECTED TIMEOUT_MS
// Consumes TOPIC with the new clustering group GROUP from the first offset until EXPECTED
// distinct messages (by queue and queue offset) arrived, waits SETTLE_MS for strays, and
// prints one JSON line per message received:
//   {"msgId","uniqKey","queueId","queueOffset","bodyHex"}
// then `DONE <distinct> <received>`. Exits 0 when EXPECTED arrived, 3 on TIMEOUT_MS (after
// printing what it got), 1 on an error. Client errors go to stderr. Lives outside test/ so
// `node --test interop/ali-ons/` does not run it.

const { Consumer } = require('ali-ons');

const [ namesrv, topic, group, expectedArg, timeoutArg ] = process.argv.slice(2);
if (!namesrv || !topic || !group || expectedArg === undefined || timeoutArg === undefined) {
  console.error('usage: node consume-json.js NAMESRV TOPIC GROUP EXPECTED TIMEOUT_MS');
  process.exit(2);
}
const expected = Number(expectedArg);
const timeoutMs = Number(timeoutArg);
/** Extra wait after EXPECTED arrived, to catch duplicates and strays. */
const SETTLE_MS = 1000;

// httpclient is asserted by ali-ons' constructor but only used with an HTTP address server.
const httpclient = { request() { throw new Error('no HTTP address server here'); } };
const logger = {
  info() {}, debug() {},
  warn: (...args) => { if (process.env.VERBOSE) console.error(...args); },
  error: (...args) => console.error(...args),
};

async function main() {
  const consumer = new Consumer({
    httpclient,
    nameSrv: [ namesrv ],
    logger: process.env.VERBOSE ? { ...console, log: console.error, info: console.error } : logger,
    instanceName: `consume-json-${process.pid}`,
    consumerGroup: group,
    consumeFromWhere: 'CONSUME_FROM_FIRST_OFFSET',
  });
  consumer.on('error', err => console.error('consumer error:', err.message));
  const received = [];
  const positions = new Set();
  await consumer.ready();
  consumer.subscribe(topic, '*', async msg => {
    positions.add(`${msg.queueId}/${msg.queueOffset}`);
    received.push({
      msgId: msg.msgId,
      uniqKey: (msg.properties && msg.properties.UNIQ_KEY) || '',
      queueId: Number(msg.queueId),
      queueOffset: Number(msg.queueOffset),
      bodyHex: msg.body.toString('hex'),
    });
  });
  const deadline = Date.now() + timeoutMs;
  while (positions.size < expected && Date.now() < deadline) {
    await new Promise(r => setTimeout(r, 100));
  }
  const all = positions.size >= expected;
  if (all) await new Promise(r => setTimeout(r, SETTLE_MS));
  // close() may wait on a pull parked on the broker; it is not needed for the output.
  await Promise.race([ consumer.close(), new Promise(r => setTimeout(r, 2000)) ]);
  const lines = received.map(r => `${JSON.stringify(r)}\n`);
  lines.push(`DONE ${positions.size} ${received.length}\n`);
  if (!all) console.error(`TIMEOUT after ${timeoutMs} ms: ${positions.size}/${expected} distinct`);
  // Writes to a pipe are asynchronous: exit only once the whole output was handed over.
  await new Promise(resolve => process.stdout.write(lines.join(''), resolve));
  return all ? 0 : 3;
}

main()
  .then(code => process.exit(code))
  .catch(err => { console.error('FAILED:', err && (err.stack || err)); process.exit(1); });
