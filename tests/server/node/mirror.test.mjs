// Traffic mirroring end to end: `muse serve` with the tiny model as primary and a fake
// candidate (an HTTP server in this process) that is slow, then failing, then healthy.
// Checks: client latency with the mirror on vs off (medians), the sampled fraction
// (exactly the SHA-256 rule, and within binomial tolerance of `fraction`), complete
// records for the healthy period, drops counted by reason in /metrics. Run with
//   MUSE_BIN=... MUSE_SHARED_DIR=... node --test --test-concurrency=1 mirror.test.mjs
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, test } from 'node:test';

import { MODEL, scaled, scratch, sleep, startServer } from './harness.mjs';

const FRACTION = 0.5;
const TIMEOUT_MS = 400;
const PHASES = [['slow', 50], ['failing', 50], ['healthy', 100]];

const servers = [];
after(async () => {
  for (const s of servers) if (!s.exited) await s.stop();
});

// The candidate: mode decides how it answers.
let mode = 'healthy';
const candidateBodies = [];
const candidate = http.createServer((req, res) => {
  let data = '';
  req.on('data', (c) => { data += c; });
  req.on('end', () => {
    const body = JSON.parse(data);
    candidateBodies.push({ body, auth: req.headers.authorization, mode });
    const answer = () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({
        id: 'c', object: 'chat.completion', model: 'cand-v2',
        choices: [{ index: 0, message: { role: 'assistant', content: `cand: ${body.messages[0].content}` }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 4, completion_tokens: 2, total_tokens: 6 },
      }));
    };
    if (mode === 'failing') {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end('{"error":{"message":"candidate down","type":"server_error"}}');
    } else if (mode === 'slow') {
      setTimeout(answer, TIMEOUT_MS * 3);
    } else {
      answer();
    }
  });
});
await new Promise((resolve) => candidate.listen(0, '127.0.0.1', resolve));
after(() => new Promise((resolve) => { candidate.closeAllConnections?.(); candidate.close(resolve); }));

// x / 2^64 < fraction with x the first 8 bytes of SHA-256(body), as muse samples.
function sampled(raw) {
  const x = createHash('sha256').update(raw).digest().readBigUInt64BE(0);
  return Number(x) / 2 ** 64 < FRACTION;
}

function body(i) {
  return JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: `mirror question ${i}` }],
    max_tokens: 6, temperature: 0 });
}

// Sends the bodies one after another; returns their latencies in ms.
async function send(server, bodies) {
  const latencies = [];
  for (const raw of bodies) {
    const t0 = performance.now();
    const res = await server.post('/v1/chat/completions', raw);
    const json = await res.json();
    latencies.push(performance.now() - t0);
    assert.equal(res.status, 200, JSON.stringify(json));
    assert.equal(json.object, 'chat.completion');
  }
  return latencies;
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

function mirrorCounters(m) {
  return {
    sampled: m.sum('muse_mirror_sampled_total'),
    enqueued: m.sum('muse_mirror_enqueued_total'),
    completed: m.sum('muse_mirror_completed_total'),
    queueFull: m.sum('muse_mirror_dropped_total', { reason: 'queue_full' }),
    candidateError: m.sum('muse_mirror_dropped_total', { reason: 'candidate_error' }),
    timeout: m.sum('muse_mirror_dropped_total', { reason: 'timeout' }),
    queued: m.sum('muse_mirror_queue_depth'),
  };
}

// Waits until every queued mirror request has been completed or dropped.
async function mirrorIdle(server) {
  const deadline = Date.now() + scaled(60000);
  for (;;) {
    const c = mirrorCounters(await server.metrics());
    if (c.queued === 0 && c.completed + c.candidateError + c.timeout === c.enqueued) return c;
    if (Date.now() > deadline) assert.fail(`mirror never went idle: ${JSON.stringify(c)}`);
    await sleep(50);
  }
}

test('mirror: latency unchanged, fraction, records, drops', { timeout: scaled(600000) }, async () => {
  const records = path.join(scratch(), 'mirror.jsonl');
  const config = path.join(scratch(), 'mirror.toml');
  fs.writeFileSync(config, `[mirror]
primary = { model = "${MODEL}" }
candidate = { url = "http://127.0.0.1:${candidate.address().port}/v1", model = "cand", api_key_env = "MUSE_MIRROR_TEST_KEY" }
fraction = ${FRACTION}
queue = 8
timeout_ms = ${TIMEOUT_MS}
records = "${records}"
`);
  process.env.MUSE_MIRROR_TEST_KEY = 'candidate-secret';
  const mirrored = await startServer({ name: 'mirrored', flags: ['--config', config], apiKey: undefined });
  servers.push(mirrored);
  const plain = await startServer({ name: 'plain' });
  servers.push(plain);

  let index = 0;
  const perPhase = {};
  const latencyOn = [];
  const bodiesAll = [];
  for (const [phase, n] of PHASES) {
    mode = phase;
    const bodies = Array.from({ length: n }, () => body(index++));
    bodiesAll.push(...bodies);
    const before = mirrorCounters(await mirrored.metrics());
    latencyOn.push(...await send(mirrored, bodies));
    const afterPhase = await mirrorIdle(mirrored);
    const delta = Object.fromEntries(Object.keys(before).map((k) => [k, afterPhase[k] - before[k]]));
    perPhase[phase] = { delta, bodies, expectedSampled: bodies.filter(sampled).length };
  }
  const latencyOff = await send(plain, bodiesAll);

  // Client latency: the mirror adds nothing the client waits for.
  const on = median(latencyOn);
  const off = median(latencyOff);
  assert.ok(on <= off * 1.5 + 15, `median latency with mirror ${on.toFixed(1)} ms vs without ${off.toFixed(1)} ms`);

  // Sampling: exactly the requests whose body hash is below the fraction, and that count
  // is within 4 sigma of the configured rate.
  const total = bodiesAll.length;
  const expected = bodiesAll.filter(sampled).length;
  const final = mirrorCounters(await mirrored.metrics());
  assert.equal(final.sampled, expected);
  const sigma = Math.sqrt(total * FRACTION * (1 - FRACTION));
  assert.ok(Math.abs(final.sampled - total * FRACTION) <= 4 * sigma, `sampled ${final.sampled} of ${total}`);
  for (const [phase, p] of Object.entries(perPhase)) assert.equal(p.delta.sampled, p.expectedSampled, phase);

  // Slow and failing periods: nothing recorded, every mirror request dropped and counted.
  const slow = perPhase.slow.delta;
  assert.equal(slow.completed, 0);
  assert.ok(slow.timeout >= 1, JSON.stringify(slow));
  assert.equal(slow.timeout + slow.queueFull, slow.sampled);
  const failing = perPhase.failing.delta;
  assert.equal(failing.completed, 0);
  assert.ok(failing.candidateError >= 1, JSON.stringify(failing));
  assert.equal(failing.candidateError + failing.queueFull + failing.timeout, failing.sampled);

  // Healthy period: one complete record per mirrored request.
  const healthy = perPhase.healthy;
  assert.equal(healthy.delta.completed + healthy.delta.queueFull, healthy.delta.sampled);
  assert.ok(healthy.delta.completed >= 0.9 * healthy.delta.sampled, JSON.stringify(healthy.delta));
  const lines = fs.readFileSync(records, 'utf8').split('\n').filter((l) => l !== '');
  assert.equal(lines.length, healthy.delta.completed);
  const healthyQuestions = new Set(healthy.bodies.filter(sampled).map((b) => JSON.parse(b).messages[0].content));
  const ids = new Set();
  for (const line of lines) {
    const r = JSON.parse(line);
    assert.match(r.id, /^mir_[0-9a-f]{16}$/);
    ids.add(r.id);
    assert.ok(Number.isInteger(r.timestamp) && Math.abs(r.timestamp - Date.now() / 1000) < 600);
    const q = r.request.messages[0].content;
    assert.ok(healthyQuestions.has(q), `record for a request outside the healthy sample: ${q}`);
    assert.equal(r.primary.model, MODEL);
    assert.equal(typeof r.primary.output, 'string');
    assert.ok(r.primary.latency_ms > 0);
    assert.ok(r.primary.prompt_tokens > 0);
    assert.ok(r.primary.completion_tokens > 0 && r.primary.completion_tokens <= 6);
    assert.deepEqual(r.candidate.model, 'cand-v2');
    assert.equal(r.candidate.output, `cand: ${q}`);
    assert.ok(r.candidate.latency_ms > 0 && r.candidate.latency_ms < TIMEOUT_MS);
    assert.equal(r.candidate.prompt_tokens, 4);
    assert.equal(r.candidate.completion_tokens, 2);
  }
  assert.equal(ids.size, lines.length, 'record ids are unique');

  // The candidate got its own model name and key, never the client's request as is.
  for (const c of candidateBodies) {
    assert.equal(c.body.model, 'cand');
    assert.equal(c.auth, 'Bearer candidate-secret');
  }

  for (const s of servers) {
    const stopped = await s.stop();
    assert.equal(stopped.sanitizer, '', stopped.sanitizer);
  }
});
