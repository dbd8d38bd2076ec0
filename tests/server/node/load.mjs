// Load test of `muse serve`: 64 concurrent streaming chat clients (16 of them abort after a
// few chunks) against --parallel 16, then the same work one request at a time. Every
// stream is checked strictly (raw SSE). Prints one JSON line of results; exits 1 on any
// failure.
//   MUSE_BIN=... MUSE_SHARED_DIR=... node load.mjs [--parallel N] [--clients N] [--aborts N]
//     [--max-tokens N] [--sequential N] [--model FILE.gguf]
import { parseArgs } from 'node:util';

import { MODEL, readSse, scaled, sleep, startServer } from './harness.mjs';
import { assembleChatStream } from './openai_checks.mjs';

const { values: opts } = parseArgs({
  options: {
    parallel: { type: 'string', default: '16' },
    clients: { type: 'string', default: '64' },
    aborts: { type: 'string', default: '16' },
    'max-tokens': { type: 'string', default: '64' },
    sequential: { type: 'string', default: '16' },
    model: { type: 'string' },  // a model file to measure instead of the tiny test model
  },
});
const PARALLEL = Number(opts.parallel);
const CLIENTS = Number(opts.clients);
const ABORTS = Number(opts.aborts);
const MAX_TOKENS = Number(opts['max-tokens']);
const SEQUENTIAL = Number(opts.sequential);
const ABORT_AFTER_EVENTS = 3;

const failures = [];
const fail = (what) => {
  failures.push(what);
  console.error(`FAIL: ${what}`);
};

// Aborting clients are spread evenly over the client indexes.
const abortsAt = new Set(Array.from({ length: ABORTS }, (_, k) => Math.floor((k * CLIENTS) / ABORTS)));

function requestBody(i) {
  return {
    model: MODEL,
    messages: [{ role: 'user', content: `Client ${i}: tell me a story about the number ${i}.` }],
    max_tokens: MAX_TOKENS,
    temperature: 0.8,
    seed: 1000 + i,
    stream: true,
    stream_options: { include_usage: true },
  };
}

// One streaming client. Returns { aborted, tokens, ttftMs } or records a failure.
async function runClient(server, i, abort) {
  const controller = new AbortController();
  const started = performance.now();
  let ttftMs = null;
  try {
    const res = await server.post('/v1/chat/completions', requestBody(i), { signal: controller.signal });
    if (res.status !== 200) {
      fail(`client ${i}: HTTP ${res.status}: ${(await res.text()).slice(0, 300)}`);
      return null;
    }
    const sse = await readSse(res, (payload, index) => {
      if (ttftMs === null && /"content":"[^"]/.test(payload)) ttftMs = performance.now() - started;
      return abort && index + 1 >= ABORT_AFTER_EVENTS;
    });
    if (abort) {
      if (sse.stoppedEarly) {
        controller.abort();
        return { aborted: true };
      }
      // The stream ended before the abort point: check it like any other.
    }
    if (!sse.done) throw new Error('stream did not end with data: [DONE]');
    if (sse.trailing !== '') throw new Error(`events after [DONE]: ${sse.trailing}`);
    const stream = assembleChatStream(sse.events, { includeUsage: true });
    if (stream.choices.length !== 1) throw new Error(`${stream.choices.length} choices`);
    const { finish_reason: finish } = stream.choices[0];
    if (!['stop', 'length'].includes(finish)) throw new Error(`finish_reason ${finish}`);
    const tokens = stream.usage.completion_tokens;
    if (finish === 'length' && tokens !== MAX_TOKENS) {
      throw new Error(`finish_reason length after ${tokens} tokens (max_tokens ${MAX_TOKENS})`);
    }
    return { aborted: false, tokens, ttftMs, text: stream.choices[0].content };
  } catch (e) {
    if (abort && controller.signal.aborted) return { aborted: true };
    fail(`client ${i}: ${e.message}`);
    return null;
  }
}

async function waitIdle(server, label) {
  const deadline = Date.now() + scaled(10000);
  for (;;) {
    const m = await server.metrics();
    const running = m.value('muse_requests_running', { model: MODEL });
    const queued = m.value('muse_queue_depth', { model: MODEL });
    if (running === 0 && queued === 0) return m;
    if (Date.now() > deadline) {
      fail(`${label}: muse_requests_running ${running}, muse_queue_depth ${queued} after all clients finished`);
      return m;
    }
    await sleep(50);
  }
}

const percentile = (values, p) => {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
};
const round = (x, digits = 1) => (x === null ? null : Number(x.toFixed(digits)));

async function main() {
  const watchdog = setTimeout(() => {
    fail(`load test still running after ${scaled(300000)} ms`);
    console.log(JSON.stringify({ failures }));
    process.exit(1);
  }, scaled(300000));
  watchdog.unref();

  const server = await startServer({ name: 'load', flags: ['--parallel', String(PARALLEL)], modelFile: opts.model });
  let result = {};
  try {
    const m0 = await server.metrics();
    const generated = (m) => m.sum('muse_generation_tokens_total', { model: MODEL });
    const cancelled = (m) => m.sum('muse_requests_cancelled_total', { model: MODEL });
    const serverErrors = (m) => m.samples.filter((s) => s.name === 'muse_requests_total' &&
      /^5/.test(s.labels.status ?? '')).reduce((acc, s) => acc + s.value, 0);

    // Phase 1: all clients at once.
    const t0 = performance.now();
    const outcomes = await Promise.all(
      Array.from({ length: CLIENTS }, (_, i) => runClient(server, i, abortsAt.has(i))));
    const concurrentMs = performance.now() - t0;
    const m1 = await waitIdle(server, 'concurrent phase');
    const completed = outcomes.filter((o) => o && !o.aborted);
    const aborted = outcomes.filter((o) => o && o.aborted).length;
    if (completed.length + aborted !== CLIENTS) fail(`${CLIENTS - completed.length - aborted} clients failed`);
    if (aborted !== ABORTS) fail(`${aborted} clients aborted, expected ${ABORTS}`);
    const concurrentTokens = generated(m1) - generated(m0);
    const completedTokens = completed.reduce((acc, o) => acc + o.tokens, 0);
    if (concurrentTokens < completedTokens) {
      fail(`muse_generation_tokens_total grew by ${concurrentTokens}, streams reported ${completedTokens}`);
    }
    const cancelledCount = cancelled(m1) - cancelled(m0);
    if (cancelledCount > ABORTS) {
      fail(`muse_requests_cancelled_total grew by ${cancelledCount} for ${ABORTS} aborts`);
    }

    // Phase 2: the first SEQUENTIAL non-aborting requests, one at a time; same seeds, so
    // the texts must equal those of the concurrent phase (batching must not change them).
    const t1 = performance.now();
    let sequentialDone = 0;
    let mismatches = 0;
    for (let i = 0; i < CLIENTS && sequentialDone < SEQUENTIAL; ++i) {
      if (abortsAt.has(i)) continue;
      const o = await runClient(server, i, false);
      sequentialDone += 1;
      if (o && outcomes[i] && !outcomes[i].aborted && o.text !== outcomes[i].text) mismatches += 1;
    }
    const sequentialMs = performance.now() - t1;
    const m2 = await waitIdle(server, 'sequential phase');
    const sequentialTokens = generated(m2) - generated(m1);
    if (mismatches > 0) fail(`${mismatches} seeded requests gave different text alone than under load`);
    const errors5xx = serverErrors(m2) - serverErrors(m0);
    if (errors5xx !== 0) fail(`muse_requests_total counts ${errors5xx} 5xx responses`);

    const ttfts = completed.map((o) => o.ttftMs).filter((x) => x !== null);
    result = {
      concurrent_tokens_per_s: round(concurrentTokens / (concurrentMs / 1000)),
      sequential_tokens_per_s: round(sequentialTokens / (sequentialMs / 1000)),
      clients: CLIENTS,
      aborted,
      completed: completed.length,
      parallel: PARALLEL,
      max_tokens: MAX_TOKENS,
      concurrent_tokens: concurrentTokens,
      concurrent_s: round(concurrentMs / 1000, 2),
      sequential_requests: sequentialDone,
      sequential_tokens: sequentialTokens,
      sequential_s: round(sequentialMs / 1000, 2),
      ttft_p50_ms: round(percentile(ttfts, 50)),
      ttft_p95_ms: round(percentile(ttfts, 95)),
      cancelled_counted: cancelledCount,
    };
  } finally {
    const stop = await server.stop();
    if (stop.sanitizer) fail(`sanitizer report in the server log:\n${stop.sanitizer}`);
    if (stop.timedOut) fail(`server did not exit within ${scaled(10000)} ms of SIGTERM`);
    else if (stop.code !== 0) {
      fail(`server exit code ${stop.code} signal ${stop.signal}:\n${stop.log.slice(-2000)}`);
    }
  }
  console.log(JSON.stringify({ ...result, failures: failures.length }));
  process.exit(failures.length === 0 ? 0 : 1);
}

main().catch((e) => {
  console.error(e);
  console.log(JSON.stringify({ error: String(e.message ?? e), failures: failures.length + 1 }));
  process.exit(1);
});
