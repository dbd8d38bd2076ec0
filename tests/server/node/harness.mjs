// Shared harness of the Node tests of `muse serve`: builds the tiny test model, starts and
// stops the server, parses Prometheus text and raw server-sent events.
//
// Environment: MUSE_BIN (the muse binary, required), MUSE_SHARED_DIR (reference data,
// required), MUSE_TEST_TIMEOUT_SCALE (multiplier for every timeout, e.g. 10 under TSan).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';

export const MODEL = 'tiny';

function requiredEnv(name) {
  const value = process.env[name];
  if (!value) throw new Error(`environment variable ${name} is required`);
  return value;
}

export const MUSE_BIN = requiredEnv('MUSE_BIN');
export const SHARED_DIR = requiredEnv('MUSE_SHARED_DIR');
export const TIMEOUT_SCALE = Number(process.env.MUSE_TEST_TIMEOUT_SCALE || '1');
if (!(TIMEOUT_SCALE > 0)) throw new Error('MUSE_TEST_TIMEOUT_SCALE must be a positive number');

// Milliseconds, scaled for slow (sanitizer) builds.
export const scaled = (ms) => Math.round(ms * TIMEOUT_SCALE);
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// One scratch directory per process, removed at exit unless MUSE_KEEP_TMP is set.
let scratchDir;
export function scratch() {
  if (!scratchDir) {
    scratchDir = fs.mkdtempSync(path.join(os.tmpdir(), 'muse-node-'));
    process.on('exit', () => {
      if (!process.env.MUSE_KEEP_TMP) fs.rmSync(scratchDir, { recursive: true, force: true });
    });
  }
  return scratchDir;
}

// Writes the random-weight qwen2 model with the GPT-2 vocabulary and the Qwen2.5 chat
// template (Hermes <tool_call> format). Deterministic: greedy output is reproducible.
let modelPath;
export function makeTinyModel() {
  if (modelPath) return modelPath;
  const out = path.join(scratch(), 'tiny-chat.gguf');
  const args = ['debug', 'make-model', '--arch', 'qwen2', '--size', 'tiny', '--type', 'q8_0',
    '--vocab', path.join(SHARED_DIR, 'tokenizers/ggml-vocab-gpt2-as-qwen2.gguf'),
    '--chat-template', path.join(SHARED_DIR, 'templates/Qwen-Qwen2.5-7B-Instruct.jinja'),
    '-o', out];
  const r = spawnSync(MUSE_BIN, args, { encoding: 'utf8', timeout: scaled(120000) });
  if (r.status !== 0) {
    throw new Error(`muse ${args.join(' ')} failed (status ${r.status}): ${r.stderr}${r.error ?? ''}`);
  }
  modelPath = out;
  return out;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const SANITIZER_MARKERS = ['ERROR: AddressSanitizer', 'WARNING: ThreadSanitizer', 'runtime error:',
  'LeakSanitizer'];

// Returns the sanitizer reports found in a server log ('' when clean).
export function sanitizerReport(logText) {
  if (!SANITIZER_MARKERS.some((m) => logText.includes(m))) return '';
  return logText;
}

// A running `muse serve`. Use startServer() to create one.
export class MuseServer {
  constructor(child, port, logPath, apiKey) {
    this.child = child;
    this.port = port;
    this.logPath = logPath;
    this.apiKey = apiKey;
    this.baseUrl = `http://127.0.0.1:${port}`;
    this.exit = new Promise((resolve) => {
      child.on('exit', (code, signal) => resolve({ code, signal }));
    });
    this.exited = false;
    this.exit.then(() => { this.exited = true; });
  }

  log() {
    try {
      return fs.readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  // An SDK client; the SDK's retries of 429/5xx are off so tests see every status.
  client(options = {}) {
    return new OpenAI({
      baseURL: `${this.baseUrl}/v1`,
      apiKey: this.apiKey ?? 'no-key',
      maxRetries: 0,
      timeout: scaled(120000),
      ...options,
    });
  }

  headers(extra = {}) {
    const h = { 'content-type': 'application/json', ...extra };
    if (this.apiKey && !('authorization' in h)) h.authorization = `Bearer ${this.apiKey}`;
    return h;
  }

  // Raw POST of a JSON value (or a string/Buffer body as is); returns the fetch Response.
  post(route, body, { headers = {}, signal } = {}) {
    const payload = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
    return fetch(`${this.baseUrl}${route}`, {
      method: 'POST', headers: this.headers(headers), body: payload, signal,
    });
  }

  get(route, { headers = {} } = {}) {
    return fetch(`${this.baseUrl}${route}`, { headers: this.headers(headers) });
  }

  async metrics() {
    const res = await this.get('/metrics');
    if (res.status !== 200) throw new Error(`GET /metrics: status ${res.status}`);
    return parseMetrics(await res.text());
  }

  // SIGTERM, then waits for the exit. Returns { code, signal, ms, log, sanitizer } and
  // kills the process if it has not exited within `graceMs`.
  async stop(graceMs = scaled(10000)) {
    const started = Date.now();
    if (!this.exited) this.child.kill('SIGTERM');
    const timer = sleep(graceMs).then(() => 'timeout');
    const outcome = await Promise.race([this.exit, timer]);
    const ms = Date.now() - started;
    if (outcome === 'timeout') {
      this.child.kill('SIGKILL');
      await this.exit;
      const log = this.log();
      return { code: null, signal: 'SIGKILL', ms, timedOut: true, log, sanitizer: sanitizerReport(log) };
    }
    const log = this.log();
    return { ...outcome, ms, timedOut: false, log, sanitizer: sanitizerReport(log) };
  }
}

// Starts `muse serve` on a free loopback port and waits until GET /health answers 200.
// `flags` are extra command-line arguments (e.g. ['--parallel', '1']); they override the
// defaults below when they name the same flag.
// modelFile: serve this model file instead of the tiny test model (benchmarks).
export async function startServer({ flags = [], apiKey, name = 'server', modelFile } = {}) {
  const model = modelFile ?? makeTinyModel();
  const port = await freePort();
  const defaults = { '--parallel': '4', '--ctx-size': '1024' };
  const args = ['serve', '--model', model, '--model-alias', MODEL, '--host', '127.0.0.1',
    '--port', String(port)];
  for (const [flag, value] of Object.entries(defaults)) {
    if (!flags.includes(flag)) args.push(flag, value);
  }
  args.push(...flags);
  const logPath = path.join(scratch(), `${name}-${port}.log`);
  const logFd = fs.openSync(logPath, 'w');
  const child = spawn(MUSE_BIN, args, { stdio: ['ignore', logFd, logFd] });
  fs.closeSync(logFd);
  const server = new MuseServer(child, port, logPath, apiKey);
  // A test run that dies must not leave servers behind.
  process.on('exit', () => { if (!server.exited) child.kill('SIGKILL'); });

  const deadline = Date.now() + scaled(60000);
  for (;;) {
    if (server.exited) {
      throw new Error(`muse ${args.join(' ')} exited before becoming healthy:\n${server.log()}`);
    }
    try {
      const res = await fetch(`${server.baseUrl}/health`, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.status === 200) return server;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await server.stop(1000);
      throw new Error(
        `muse serve did not answer GET /health with 200 within ${scaled(60000)} ms:\n${server.log()}`);
    }
    await sleep(100);
  }
}

// Parses Prometheus text exposition into { samples: [{name, labels, value}], types: {name:type} }.
export function parseMetrics(text) {
  const samples = [];
  const types = {};
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^# TYPE (\S+) (\S+)/.exec(line);
      if (m) types[m[1]] = m[2];
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$/.exec(line);
    if (!m) throw new Error(`malformed metrics line: ${JSON.stringify(line)}`);
    const labels = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*/gy;
      let lm;
      let consumed = 0;
      while ((lm = re.exec(m[3])) !== null) {
        labels[lm[1]] = lm[2].replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
        consumed = re.lastIndex;
      }
      if (consumed !== m[3].length) throw new Error(`malformed labels: ${JSON.stringify(line)}`);
    }
    const value = m[4] === '+Inf' ? Infinity : m[4] === '-Inf' ? -Infinity : Number(m[4]);
    if (Number.isNaN(value) && m[4] !== 'NaN') throw new Error(`malformed value: ${JSON.stringify(line)}`);
    samples.push({ name: m[1], labels, value });
  }
  const matching = (name, labels = {}) => samples.filter((s) => s.name === name &&
    Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return {
    samples,
    types,
    text,
    // Sum of the samples of `name` whose labels include `labels` (0 when none).
    sum(name, labels = {}) {
      return matching(name, labels).reduce((acc, s) => acc + s.value, 0);
    },
    // The single sample of `name` with exactly these labels plus any others; throws when absent.
    value(name, labels = {}) {
      const found = matching(name, labels);
      if (found.length !== 1) {
        throw new Error(`expected one sample ${name}${JSON.stringify(labels)}, found ${found.length}`);
      }
      return found[0].value;
    },
    matching,
  };
}

// Reads a fetch Response body as server-sent events, strictly: every event is one
// `data: <payload>` line followed by a blank line (comment lines starting with ':' are
// skipped). Returns { events: [payload strings], done: bool, trailing: text after [DONE] }.
// `onEvent(payload, index)` may return true to stop reading early (the caller aborts).
export async function readSse(response, onEvent) {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let buffer = '';
  const events = [];
  let done = false;
  let afterDone = '';
  const reader = response.body.getReader();
  const handleBlock = (block) => {
    const dataLines = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue;
      if (!line.startsWith('data: ') && line !== 'data:') {
        throw new Error(`unexpected SSE line ${JSON.stringify(line)}`);
      }
      dataLines.push(line.slice(line.startsWith('data: ') ? 6 : 5));
    }
    if (dataLines.length === 0) return false;
    if (dataLines.length !== 1) throw new Error(`SSE event with ${dataLines.length} data lines`);
    const payload = dataLines[0];
    if (done) {
      afterDone += payload;
      return false;
    }
    if (payload === '[DONE]') {
      done = true;
      return false;
    }
    events.push(payload);
    return onEvent ? onEvent(payload, events.length - 1) === true : false;
  };
  for (;;) {
    const { value, done: eof } = await reader.read();
    if (eof) break;
    buffer += decoder.decode(value, { stream: true });
    buffer = buffer.replace(/\r\n/g, '\n');
    let sep;
    while ((sep = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, sep);
      buffer = buffer.slice(sep + 2);
      if (handleBlock(block)) {
        return { events, done, trailing: afterDone, stoppedEarly: true, reader };
      }
    }
  }
  buffer += decoder.decode();
  if (buffer.trim() !== '') throw new Error(`SSE stream ended inside an event: ${JSON.stringify(buffer)}`);
  return { events, done, trailing: afterDone, stoppedEarly: false };
}
