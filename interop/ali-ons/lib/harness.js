'use strict';
// Process harness for the ali-ons interop tests: starts the built `rmq` binary (path in
// RMQ_BIN) as `standalone` or `namesrv` on ephemeral ports with a fresh directory under
// interop/ali-ons/target/, parses its `READY <role> <host:port>` lines, waits until the
// NameServer serves the TBW102 route (the broker's registration), and SIGKILLs it on stop or
// when this process exits. Owns no client logic. Never waits without a bound.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const readline = require('node:readline');

/** Longest wait for the READY lines. */
const READY_TIMEOUT_MS = 30000;
/** Longest wait for a topic route to appear on the NameServer. */
const ROUTE_TIMEOUT_MS = 15000;
/** Largest response frame the route probe accepts. */
const PROBE_FRAME_MAX = 16 * 1024 * 1024;
/** Request code GET_ROUTEINFO_BY_TOPIC. */
const GET_ROUTEINFO_BY_TOPIC = 105;
/** Request code UPDATE_AND_CREATE_TOPIC (admin). */
const UPDATE_AND_CREATE_TOPIC = 17;
/** Response code TOPIC_NOT_EXIST. */
const TOPIC_NOT_EXIST = 17;
/** Topic permission PERM_READ (4) | PERM_WRITE (2). */
const PERM_READ_WRITE = 6;

const children = new Set();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/** The rmq binary from RMQ_BIN; throws a clear error when unset or missing. */
function rmqBin() {
  const bin = process.env.RMQ_BIN;
  if (!bin) {
    throw new Error('RMQ_BIN is not set: point it at the built rmq binary, e.g. ' +
      'RMQ_BIN=$PWD/target/debug/rmq (scripts/interop.sh does this)');
  }
  if (!fs.existsSync(bin) || !fs.statSync(bin).isFile()) {
    throw new Error(`RMQ_BIN=${bin} is not a file: build it first (cargo build -p rmq)`);
  }
  return bin;
}

let dirCounter = 0;
/** A fresh empty directory target/<name>-<pid>-<n>-<ms> under interop/ali-ons. */
function freshDir(name) {
  const dir = path.join(__dirname, '..', 'target', `${name}-${process.pid}-${dirCounter++}-${Date.now()}`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/**
 * Commit-log file size the tests configure (mappedFileSizeCommitLog): brokers preallocate
 * whole files of this size (Java's default is 1 GiB; rmq keeps one log per shard), while test
 * messages are tiny.
 */
const TEST_COMMIT_LOG_FILE_SIZE = 16 * 1024 * 1024;

/**
 * A standalone mode in dir: store in dir/store, and dir/broker.conf with
 * TEST_COMMIT_LOG_FILE_SIZE plus extraConfig lines (key=value).
 */
function standaloneMode(dir, extraConfig = []) {
  const config = path.join(dir, 'broker.conf');
  fs.writeFileSync(config, [ `mappedFileSizeCommitLog=${TEST_COMMIT_LOG_FILE_SIZE}`, ...extraConfig, '' ].join('\n'));
  return { standalone: { storeDir: path.join(dir, 'store'), config } };
}

/** A token unique to this process run, for topic and group names. */
function runToken() {
  return `${process.pid}_${Date.now() % 100000}`;
}

/**
 * Starts rmq. mode: { standalone: { storeDir, config? } } or { namesrv: { dir } }. Output
 * goes to <storeDir>.log or <dir>/rmq.log. Resolves to { addrs: { namesrv, broker? },
 * namesrv, log, stop() }; stop() SIGKILLs and, for a standalone, removes the store directory
 * (the log stays for inspection).
 */
async function startRmq(mode) {
  let args;
  let dir;
  let roles;
  if (mode.standalone) {
    dir = mode.standalone.storeDir;
    args = [ 'standalone', '--namesrv-port', '0', '--broker-port', '0', '--store-dir', dir ];
    if (mode.standalone.config) args.push('-c', mode.standalone.config);
    roles = [ 'namesrv', 'broker' ];
  } else {
    dir = mode.namesrv.dir;
    args = [ 'namesrv', '--port', '0', '--bind', '127.0.0.1', '--kv-config', path.join(dir, 'kv.json') ];
    roles = [ 'namesrv' ];
  }
  const log = mode.standalone ? `${dir}.log` : path.join(dir, 'rmq.log');
  fs.appendFileSync(log, `=== rmq ${args.join(' ')}\n`);
  const logFd = fs.openSync(log, 'a');
  const child = spawn(rmqBin(), args, { stdio: [ 'ignore', 'pipe', logFd ] });
  fs.closeSync(logFd);
  children.add(child);
  const addrs = {};
  const stop = async () => {
    if (children.delete(child)) child.kill('SIGKILL');
    await new Promise(resolve => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', resolve)));
    if (mode.standalone) fs.rmSync(dir, { recursive: true, force: true });
  };
  const tail = () => fs.readFileSync(log, 'utf8').split('\n').slice(-40).join('\n');
  try {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no READY lines for ${roles} within ${READY_TIMEOUT_MS} ms (got ${JSON.stringify(addrs)})`)), READY_TIMEOUT_MS);
      child.once('error', err => { clearTimeout(timer); reject(err); });
      child.once('exit', (code, signal) => { clearTimeout(timer); reject(new Error(`rmq exited early (code ${code}, signal ${signal})`)); });
      readline.createInterface({ input: child.stdout }).on('line', line => {
        fs.appendFileSync(log, `${line}\n`);
        const m = /^READY (\S+) (\S+)/.exec(line);
        if (!m) return;
        addrs[m[1]] = m[2];
        if (roles.every(r => addrs[r])) { clearTimeout(timer); resolve(); }
      });
    });
    if (mode.standalone) await waitRoute(addrs.namesrv, 'TBW102', ROUTE_TIMEOUT_MS);
  } catch (err) {
    await stop();
    err.message = `rmq ${args.join(' ')}: ${err.message}\n--- tail of ${log} ---\n${tail()}`;
    throw err;
  }
  return { addrs, namesrv: addrs.namesrv, log, stop };
}

/**
 * One request/response round trip with a JSON header (PROTOCOL.md §2) to host:port; resolves
 * to the response header ({ code, remark, extFields, ... }).
 */
function remotingRequest(addr, code, extFields) {
  const host = addr.slice(0, addr.lastIndexOf(':'));
  const port = Number(addr.slice(addr.lastIndexOf(':') + 1));
  const header = Buffer.from(JSON.stringify({ code, language: 'JAVA', version: 401, opaque: 1, flag: 0, extFields }));
  const frame = Buffer.alloc(8);
  frame.writeUInt32BE(4 + header.length, 0);
  frame.writeUInt32BE(header.length, 4); // serialize type JSON (0) in the top byte
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    let buf = Buffer.alloc(0);
    socket.setTimeout(3000, () => socket.destroy(new Error(`request ${code} to ${addr} timed out`)));
    socket.on('error', reject);
    socket.on('connect', () => socket.write(Buffer.concat([ frame, header ])));
    socket.on('data', chunk => {
      buf = Buffer.concat([ buf, chunk ]);
      if (buf.length < 4) return;
      const total = buf.readUInt32BE(0);
      if (total < 4 || total > PROBE_FRAME_MAX) { socket.destroy(); reject(new Error('bad frame length')); return; }
      if (buf.length < 4 + total) return;
      socket.end();
      const mark = buf.readUInt32BE(4);
      if (mark >>> 24 !== 0) { reject(new Error('response header is not JSON')); return; }
      try {
        const response = JSON.parse(buf.subarray(8, 8 + (mark & 0xffffff)).toString());
        if (typeof response.code !== 'number') throw new Error('no numeric code');
        resolve(response);
      } catch (err) {
        reject(err);
      }
    });
  });
}

/** GET_ROUTEINFO_BY_TOPIC for topic; resolves to the response code. */
async function routeCode(namesrv, topic) {
  return (await remotingRequest(namesrv, GET_ROUTEINFO_BY_TOPIC, { topic })).code;
}

/**
 * Creates topic on the broker as `mqadmin updateTopic` does (UPDATE_AND_CREATE_TOPIC, perm
 * read|write, SINGLE_TAG), then waits until the NameServer serves its route. ali-ons cannot
 * auto-create topics: on TOPIC_NOT_EXIST from the NameServer it throws instead of falling back
 * to the TBW102 route as the Java client does, so its topics must exist first.
 */
async function createTopic(broker, namesrv, topic, queueNums = 4) {
  const response = await remotingRequest(broker, UPDATE_AND_CREATE_TOPIC, {
    topic,
    defaultTopic: 'TBW102',
    readQueueNums: String(queueNums),
    writeQueueNums: String(queueNums),
    perm: String(PERM_READ_WRITE),
    topicFilterType: 'SINGLE_TAG',
    topicSysFlag: '0',
    order: 'false',
  });
  if (response.code !== 0) {
    throw new Error(`UPDATE_AND_CREATE_TOPIC ${topic}: code ${response.code} ${response.remark || ''}`);
  }
  await waitRoute(namesrv, topic);
}

/** Polls routeCode until SUCCESS (0) or timeoutMs; rejects with the last answer. */
async function waitRoute(namesrv, topic, timeoutMs = ROUTE_TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let last;
    try {
      const code = await routeCode(namesrv, topic);
      if (code === 0) return;
      last = `response code ${code}`;
    } catch (err) {
      last = `probe error: ${err.message}`;
    }
    if (Date.now() >= deadline) throw new Error(`NameServer ${namesrv} never served the route of ${topic}: ${last}`);
    await new Promise(r => setTimeout(r, 100));
  }
}

/** Polls cond() every 100 ms until true or timeoutMs; resolves to whether it held. */
async function waitUntil(timeoutMs, cond) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (cond()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise(r => setTimeout(r, 100));
  }
}

/** Decodes an IPv4 offset message id (ip 4, port 4, commit-log offset 8 bytes; 32 hex). */
function decodeOffsetMsgId(id) {
  if (typeof id !== 'string' || !/^[0-9A-Fa-f]{32}$/.test(id)) return null;
  const b = Buffer.from(id, 'hex');
  return { host: `${b[0]}.${b[1]}.${b[2]}.${b[3]}:${b.readUInt32BE(4)}`, offset: b.readBigUInt64BE(8) };
}

module.exports = {
  TOPIC_NOT_EXIST, TEST_COMMIT_LOG_FILE_SIZE, rmqBin, freshDir, standaloneMode, runToken, startRmq, routeCode, createTopic, waitRoute, waitUntil, decodeOffsetMsgId,
  remotingRequest,
};
