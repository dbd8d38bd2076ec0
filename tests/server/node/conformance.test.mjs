// Conformance of `muse serve` with OpenAI's API, driven by the official `openai` SDK (and
// raw fetch where the SDK hides status, headers or the SSE text). Run with
//   MUSE_BIN=... MUSE_SHARED_DIR=... node --test --test-concurrency=1 conformance.test.mjs
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs, { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import OpenAI from 'openai';

import { MODEL, readSse, scaled, scratch, sleep, startServer } from './harness.mjs';
import {
  PROFILE_SCHEMA, TIME_TOOL, WEATHER_TOOL, assembleChatStream, checkProfile, checkToolCall,
  checkUsage, expectApiError, isJsonObjectPrefix,
} from './openai_checks.mjs';

const T = { timeout: scaled(120000) };
const USER = [{ role: 'user', content: 'Write a short poem about the sea.' }];
const WEATHER_Q = [{ role: 'user', content: 'What is the weather in Paris?' }];
const FORCE_WEATHER = { type: 'function', function: { name: 'get_weather' } };

let server;
let client;

before(async () => {
  server = await startServer({ name: 'main' });
  client = server.client();
});

// Backstop: a failed test must not leave the server running (the last test checks the
// clean shutdown itself).
after(async () => {
  if (server && !server.exited) await server.stop();
});

const chat = (body, options) => client.chat.completions.create({ model: MODEL, ...body }, options);

// Streams a chat completion with raw fetch and checks the SSE framing strictly.
async function rawChatStream(body, { includeUsage = false } = {}) {
  const payload = { model: MODEL, ...body, stream: true };
  if (includeUsage) payload.stream_options = { include_usage: true };
  const res = await server.post('/v1/chat/completions', payload);
  if (res.status !== 200) assert.fail(`status ${res.status}: ${await res.text()}`);
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  const sse = await readSse(res);
  assert.ok(sse.done, 'stream did not end with data: [DONE]');
  assert.equal(sse.trailing, '', 'events after [DONE]');
  return assembleChatStream(sse.events, { includeUsage });
}

// A substring of `text` around `fraction` of its length (3 code points, no U+FFFD, not
// only spaces) whose first occurrence is not at the start.
function pickStop(text, fraction) {
  const chars = [...text];
  const center = Math.floor(chars.length * fraction);
  for (let d = 0; d < chars.length; ++d) {
    for (const start of [center + d, center - d]) {
      if (start < 1 || start + 3 > chars.length) continue;
      const s = chars.slice(start, start + 3).join('');
      if (s.includes('\uFFFD') || s.trim() === '' || text.indexOf(s) < 1) continue;
      return s;
    }
  }
  assert.fail(`no usable stop string in ${JSON.stringify(text)}`);
}

test('GET /v1/models lists the alias', T, async () => {
  const res = await server.get('/v1/models');
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.equal(body.object, 'list');
  const ids = [];
  for await (const m of client.models.list()) {
    assert.equal(m.object, 'model');
    assert.ok(Number.isInteger(m.created));
    assert.equal(typeof m.owned_by, 'string');
    ids.push(m.id);
  }
  assert.ok(ids.includes(MODEL), `models: ${ids}`);
  assert.deepEqual(body.data.map((m) => m.id), ids);
});

test('chat completion, non-streaming: response shape', T, async () => {
  const r = await chat({ messages: USER, max_tokens: 16, temperature: 0 });
  assert.equal(typeof r.id, 'string');
  assert.ok(r.id.length > 0);
  assert.equal(r.object, 'chat.completion');
  assert.ok(Number.isInteger(r.created), 'created is an integer (seconds)');
  assert.ok(Math.abs(r.created - Date.now() / 1000) < 3600, `created ${r.created} is not now in seconds`);
  assert.equal(r.model, MODEL);
  assert.equal(r.choices.length, 1);
  const c = r.choices[0];
  assert.equal(c.index, 0);
  assert.equal(c.message.role, 'assistant');
  assert.equal(typeof c.message.content, 'string');
  assert.equal(c.message.refusal, null);
  assert.equal(c.logprobs, null);
  assert.ok(['stop', 'length'].includes(c.finish_reason), c.finish_reason);
  assert.ok(!c.message.tool_calls || c.message.tool_calls.length === 0);
  checkUsage(r.usage, { maxCompletion: 16 });
  if (c.finish_reason === 'length') assert.equal(r.usage.completion_tokens, 16);
  assert.ok(c.message.content.length > 0, 'empty content for 16 tokens');
});

test('chat streaming: role first, content deltas, one finish_reason, usage chunk, [DONE]', T, async () => {
  const body = { messages: USER, max_tokens: 20, temperature: 0 };
  const plain = await chat(body);
  const streamed = await rawChatStream(body, { includeUsage: true });
  assert.equal(streamed.choices.length, 1);
  const c = streamed.choices[0];
  assert.ok(c.sawContent, 'no content deltas');
  assert.equal(c.content, plain.choices[0].message.content, 'streamed text differs from non-streamed');
  assert.equal(c.finish_reason, plain.choices[0].finish_reason);
  assert.deepEqual(streamed.usage, plain.usage);

  // The same through the SDK's stream reader.
  const stream = await chat({ ...body, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let finishes = 0;
  let usage = null;
  for await (const chunk of stream) {
    for (const choice of chunk.choices) {
      text += choice.delta.content ?? '';
      if (choice.finish_reason) finishes += 1;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  assert.equal(text, plain.choices[0].message.content);
  assert.equal(finishes, 1);
  assert.deepEqual(usage, plain.usage);
});

test('chat streaming without stream_options has no usage', T, async () => {
  const streamed = await rawChatStream({ messages: USER, max_tokens: 8, temperature: 0 });
  assert.equal(streamed.usage, null);
  assert.ok(['stop', 'length'].includes(streamed.choices[0].finish_reason));
});

test('n=3 non-streaming: three independently sampled choices', T, async () => {
  const body = { messages: USER, max_tokens: 12, temperature: 1, seed: 7, n: 3 };
  const r = await chat(body);
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2]);
  for (const c of r.choices) {
    assert.equal(c.message.role, 'assistant');
    assert.equal(typeof c.message.content, 'string');
    assert.ok(['stop', 'length'].includes(c.finish_reason));
  }
  checkUsage(r.usage, { maxCompletion: 36 });
  if (r.choices.every((c) => c.finish_reason === 'length')) assert.equal(r.usage.completion_tokens, 36);
  const texts = new Set(r.choices.map((c) => c.message.content));
  assert.ok(texts.size >= 2, `all choices identical: ${[...texts]}`);
  const again = await chat(body);
  assert.deepEqual(again.choices.map((c) => c.message.content), r.choices.map((c) => c.message.content),
    'same seed, different choices');
});

test('n=3 streaming: every index gets role, content and one finish_reason', T, async () => {
  const body = { messages: USER, max_tokens: 12, temperature: 1, seed: 7, n: 3 };
  const streamed = await rawChatStream(body, { includeUsage: true });
  assert.equal(streamed.choices.length, 3);
  const plain = await chat(body);
  assert.deepEqual(streamed.choices.map((c) => c.content), plain.choices.map((c) => c.message.content),
    'streamed choices differ from non-streamed ones with the same seed');
  assert.deepEqual(streamed.usage, plain.usage);
});

test('determinism: temperature 0 twice gives the same text', T, async () => {
  const body = { messages: USER, max_tokens: 24, temperature: 0 };
  const a = await chat(body);
  const b = await chat(body);
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
  // Greedy decoding ignores the seed.
  const c = await chat({ ...body, seed: 99 });
  assert.equal(c.choices[0].message.content, a.choices[0].message.content);
});

test('greedy output does not depend on concurrent requests (continuous batching)', T, async () => {
  const prompts = Array.from({ length: 8 }, (_, i) => [{ role: 'user', content: `Tell me fact number ${i}.` }]);
  const body = (messages) => ({ messages, max_tokens: 16, temperature: 0 });
  const sequential = [];
  for (const p of prompts) sequential.push((await chat(body(p))).choices[0].message.content);
  const concurrent = await Promise.all(prompts.map((p) => chat(body(p))));
  assert.deepEqual(concurrent.map((r) => r.choices[0].message.content), sequential);
});

test('seed reproducibility at temperature 1', T, async () => {
  const body = { messages: USER, max_tokens: 20, temperature: 1, seed: 1234 };
  const a = await chat(body);
  const b = await chat(body);
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
  const c = await chat({ ...body, seed: 4321 });
  assert.notEqual(c.choices[0].message.content, a.choices[0].message.content, 'seed has no effect');
});

test('content given as an array of text parts equals the plain string', T, async () => {
  const a = await chat({ messages: USER, max_tokens: 10, temperature: 0 });
  const parts = [{ role: 'user', content: [{ type: 'text', text: USER[0].content }] }];
  const b = await chat({ messages: parts, max_tokens: 10, temperature: 0 });
  assert.equal(b.choices[0].message.content, a.choices[0].message.content);
  assert.equal(b.usage.prompt_tokens, a.usage.prompt_tokens);
});

test('stop sequence: output ends before it, finish_reason stop', T, async () => {
  const base = { messages: USER, max_tokens: 30, temperature: 0 };
  const full = (await chat(base)).choices[0].message.content;
  const stop = pickStop(full, 0.5);
  const expected = full.slice(0, full.indexOf(stop));
  const r = await chat({ ...base, stop });
  assert.equal(r.choices[0].message.content, expected, `stop ${JSON.stringify(stop)} in ${JSON.stringify(full)}`);
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.ok(r.usage.completion_tokens < 30);
});

test('stop sequences: array of 4, earliest match wins, also streamed', T, async () => {
  const base = { messages: USER, max_tokens: 30, temperature: 0 };
  const full = (await chat(base)).choices[0].message.content;
  const early = pickStop(full, 0.3);
  const late = pickStop(full, 0.75);
  const stops = [late, 'qqqqzzzzqq', early, 'never-appears'];
  const cut = Math.min(...stops.map((s) => full.indexOf(s)).filter((i) => i >= 0));
  const expected = full.slice(0, cut);
  const r = await chat({ ...base, stop: stops });
  assert.equal(r.choices[0].message.content, expected,
    `stops ${JSON.stringify(stops)} in ${JSON.stringify(full)}`);
  assert.equal(r.choices[0].finish_reason, 'stop');
  // Streaming must hold back text that might be the start of a stop sequence.
  const streamed = await rawChatStream({ ...base, stop: stops });
  assert.equal(streamed.choices[0].content, expected);
  assert.equal(streamed.choices[0].finish_reason, 'stop');
});

test('more than 4 stop sequences -> 400', T, async () => {
  const res = await server.post('/v1/chat/completions',
    { model: MODEL, messages: USER, max_tokens: 4, stop: ['a', 'b', 'c', 'd', 'e'] });
  await expectApiError(res, 400, { type: 'invalid_request_error' });
});

test('max_tokens: finish_reason length and exactly that many tokens', T, async () => {
  const r = await chat({ messages: USER, max_tokens: 7, temperature: 0 });
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 7);
  const r2 = await chat({ messages: USER, max_completion_tokens: 5, temperature: 0 });
  assert.equal(r2.choices[0].finish_reason, 'length');
  assert.equal(r2.usage.completion_tokens, 5);
  // 5 greedy tokens are a prefix of 7 greedy tokens.
  assert.ok(r.choices[0].message.content.startsWith(r2.choices[0].message.content));
});

function checkTokenLogprobs(entries) {
  for (const e of entries) {
    const where = JSON.stringify(e);
    assert.equal(typeof e.token, 'string', where);
    assert.ok(typeof e.logprob === 'number' && e.logprob <= 0, where);
    assert.ok(Array.isArray(e.bytes) && e.bytes.every((b) => Number.isInteger(b) && b >= 0 && b < 256), where);
    assert.equal(e.top_logprobs.length, 3, where);
    let sumProb = 0;
    for (let i = 0; i < 3; ++i) {
      const t = e.top_logprobs[i];
      assert.equal(typeof t.token, 'string', where);
      assert.ok(typeof t.logprob === 'number' && t.logprob <= 0, where);
      assert.ok(Array.isArray(t.bytes), where);
      if (i > 0) assert.ok(t.logprob <= e.top_logprobs[i - 1].logprob, `top_logprobs not sorted: ${where}`);
      sumProb += Math.exp(t.logprob);
    }
    assert.ok(sumProb <= 1 + 1e-4, `top probabilities sum to ${sumProb}: ${where}`);
    // Greedy: the sampled token is the most likely one.
    assert.ok(Math.abs(e.logprob - e.top_logprobs[0].logprob) < 1e-5, `sampled is not the max: ${where}`);
    assert.deepEqual(e.bytes, e.top_logprobs[0].bytes, where);
  }
}

test('logprobs with top_logprobs 3 at temperature 0', T, async () => {
  const r = await chat({ messages: USER, max_tokens: 8, temperature: 0, logprobs: true, top_logprobs: 3 });
  const c = r.choices[0];
  assert.ok(c.logprobs && Array.isArray(c.logprobs.content), JSON.stringify(c.logprobs));
  assert.equal(c.logprobs.content.length, r.usage.completion_tokens);
  checkTokenLogprobs(c.logprobs.content);
  if (c.finish_reason === 'length') {
    const bytes = Buffer.from(c.logprobs.content.flatMap((e) => e.bytes));
    assert.equal(bytes.toString('utf8'), c.message.content, 'token bytes do not spell the content');
  }
  // Streamed logprobs are the same entries.
  const streamed = await rawChatStream({ messages: USER, max_tokens: 8, temperature: 0, logprobs: true,
    top_logprobs: 3 });
  assert.deepEqual(streamed.choices[0].logprobs, c.logprobs.content);
});

test('response_format json_schema (strict, bounded) gives valid JSON', T, async () => {
  const response_format = {
    type: 'json_schema', json_schema: { name: 'profile', strict: true, schema: PROFILE_SCHEMA },
  };
  const messages = [{ role: 'user', content: 'Describe a profile as JSON.' }];
  const runs = [{ temperature: 0 }, { temperature: 1, seed: 1 }, { temperature: 1, seed: 2 }];
  for (const sampling of runs) {
    const r = await chat({ messages, max_tokens: 300, response_format, ...sampling });
    const text = r.choices[0].message.content;
    assert.equal(r.choices[0].finish_reason, 'stop', `${JSON.stringify(sampling)}: ${JSON.stringify(text)}`);
    let value;
    try {
      value = JSON.parse(text);
    } catch (e) {
      assert.fail(`${e.message}: ${JSON.stringify(text)}`);
    }
    checkProfile(value, text);
  }
  // Streamed: the concatenated deltas are valid too.
  const streamed = await rawChatStream({ messages, max_tokens: 300, response_format, temperature: 1, seed: 3 });
  checkProfile(JSON.parse(streamed.choices[0].content), streamed.choices[0].content);
});

// json_object does not bound the output (a random-weight model can stay inside one string
// until max_tokens), so an output cut off by max_tokens must be a prefix of a JSON object,
// and a finished one must parse as an object.
test('response_format json_object gives a JSON object (or its prefix when cut off)', T, async () => {
  const messages = [{ role: 'user', content: 'Reply with a JSON object.' }];
  const runs = [{ temperature: 0 }, { temperature: 1, seed: 1 }, { temperature: 1, seed: 2 },
    { temperature: 1, seed: 3 }];
  for (const sampling of runs) {
    const r = await chat({ messages, max_tokens: 200, response_format: { type: 'json_object' }, ...sampling });
    const { content: text } = r.choices[0].message;
    const where = `${JSON.stringify(sampling)}: ${JSON.stringify(text)}`;
    assert.match(text, /^\s*\{/, where);
    if (r.choices[0].finish_reason === 'stop') {
      const value = JSON.parse(text);
      assert.ok(value !== null && typeof value === 'object' && !Array.isArray(value), where);
    } else {
      assert.equal(r.choices[0].finish_reason, 'length', where);
      assert.equal(r.usage.completion_tokens, 200, where);
      assert.ok(isJsonObjectPrefix(text), `not a JSON object prefix: ${where}`);
    }
  }
  // Biasing '}' (GPT-2 id 92) up makes the object close at once: generation must end
  // there (finish_reason stop) with a complete object.
  const r = await chat({ messages, max_tokens: 200, response_format: { type: 'json_object' }, temperature: 0,
    logit_bias: { 92: 100 } });
  const { content: text } = r.choices[0].message;
  assert.equal(r.choices[0].finish_reason, 'stop', JSON.stringify(text));
  const value = JSON.parse(text);
  assert.ok(value !== null && typeof value === 'object' && !Array.isArray(value), text);
});

test('tool call round trip, non-streaming', T, async () => {
  const r = await chat({ messages: WEATHER_Q, tools: [WEATHER_TOOL], tool_choice: FORCE_WEATHER,
    max_tokens: 100, temperature: 0 });
  const c = r.choices[0];
  assert.equal(c.finish_reason, 'tool_calls', JSON.stringify(c));
  assert.equal(c.message.role, 'assistant');
  assert.ok(c.message.content === null || c.message.content === '',
    `content ${JSON.stringify(c.message.content)}`);
  assert.equal(c.message.tool_calls.length, 1);
  const call = c.message.tool_calls[0];
  assert.equal(call.function.name, 'get_weather');
  checkToolCall(call);

  const result = '{"temperature": 21, "sky": "clear"}';
  const followUp = [...WEATHER_Q,
    { role: 'assistant', content: null, tool_calls: [call] },
    { role: 'tool', tool_call_id: call.id, content: result }];
  const r2 = await chat({ messages: followUp, tools: [WEATHER_TOOL], max_tokens: 20, temperature: 0 });
  const c2 = r2.choices[0];
  assert.ok(['stop', 'length'].includes(c2.finish_reason), JSON.stringify(c2));
  assert.equal(typeof c2.message.content, 'string');
  assert.ok(!c2.message.tool_calls || c2.message.tool_calls.length === 0);
  // The prompt now holds the call and its result.
  assert.ok(r2.usage.prompt_tokens > r.usage.prompt_tokens + 10,
    `prompt ${r2.usage.prompt_tokens} tokens vs ${r.usage.prompt_tokens} before the tool result`);
});

test('tool call, streamed: id/type/name first, then argument fragments', T, async () => {
  const body = { messages: WEATHER_Q, tools: [WEATHER_TOOL], tool_choice: FORCE_WEATHER, max_tokens: 100,
    temperature: 0 };
  const plain = await chat(body);
  const streamed = await rawChatStream(body, { includeUsage: true });
  const c = streamed.choices[0];
  assert.equal(c.finish_reason, 'tool_calls');
  assert.equal(c.tool_calls.length, 1);
  checkToolCall(c.tool_calls[0]);
  assert.equal(c.tool_calls[0].function.arguments, plain.choices[0].message.tool_calls[0].function.arguments);
  assert.equal(c.content, '', `text content alongside a forced tool call: ${JSON.stringify(c.content)}`);
  // The SDK's stream helper assembles the same call.
  const runner = client.chat.completions.stream({ model: MODEL, ...body });
  const final = await runner.finalChatCompletion();
  checkToolCall(final.choices[0].message.tool_calls[0]);
});

test('tool_choice required: calls one of the tools', T, async () => {
  for (const seed of [1, 2, 3]) {
    const r = await chat({ messages: WEATHER_Q, tools: [WEATHER_TOOL, TIME_TOOL], tool_choice: 'required',
      max_tokens: 100, temperature: 1, seed });
    const c = r.choices[0];
    assert.equal(c.finish_reason, 'tool_calls', JSON.stringify(c));
    assert.ok(c.message.tool_calls.length >= 1);
    for (const call of c.message.tool_calls) checkToolCall(call, ['get_weather', 'get_time']);
  }
});

test('tool_choice none: no tool calls', T, async () => {
  const r = await chat({ messages: WEATHER_Q, tools: [WEATHER_TOOL], tool_choice: 'none', max_tokens: 16,
    temperature: 0 });
  const c = r.choices[0];
  assert.ok(['stop', 'length'].includes(c.finish_reason));
  assert.ok(!c.message.tool_calls || c.message.tool_calls.length === 0, JSON.stringify(c.message));
  assert.equal(typeof c.message.content, 'string');
});

test('completions endpoint', T, async () => {
  const prompt = 'Hello world';
  const r = await client.completions.create({ model: MODEL, prompt, max_tokens: 10, temperature: 0 });
  assert.equal(r.object, 'text_completion');
  assert.equal(typeof r.id, 'string');
  assert.ok(Number.isInteger(r.created));
  assert.equal(r.model, MODEL);
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].index, 0);
  assert.equal(typeof r.choices[0].text, 'string');
  assert.equal(r.choices[0].finish_reason, 'length');
  checkUsage(r.usage);
  assert.equal(r.usage.completion_tokens, 10);
  // The raw prompt is not templated: GPT-2 ids of "Hello world" are 15496 995.
  assert.equal(r.usage.prompt_tokens, 2);

  const stream = await client.completions.create({ model: MODEL, prompt, max_tokens: 10, temperature: 0,
    stream: true });
  let text = '';
  let finishes = 0;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'text_completion');
    text += chunk.choices[0]?.text ?? '';
    if (chunk.choices[0]?.finish_reason) finishes += 1;
  }
  assert.equal(text, r.choices[0].text);
  assert.equal(finishes, 1);
});

test('tokenize / detokenize round trip', T, async () => {
  const tok = async (content) => {
    const res = await server.post('/tokenize', { model: MODEL, content });
    assert.equal(res.status, 200);
    return (await res.json()).tokens;
  };
  // Known answers from shared/tokenizers/ggml-vocab-gpt2-as-qwen2.gguf.out.
  assert.deepEqual(await tok('Hello world'), [15496, 995]);
  assert.deepEqual(await tok(' Hello, world!'), [18435, 11, 995, 0]);
  const text = 'Round trip: Привет, 🌍 wörld\n\ttabs';
  const tokens = await tok(text);
  assert.ok(tokens.length > 5 && tokens.every(Number.isInteger));
  const res = await server.post('/detokenize', { model: MODEL, tokens });
  assert.equal(res.status, 200);
  assert.equal((await res.json()).content, text);
});

test('metrics: counters follow the requests', T, async () => {
  const before = await server.metrics();
  const r = await chat({ messages: USER, max_tokens: 6, temperature: 0 });
  await sleep(50);
  const after = await server.metrics();
  const delta = (name, labels) => after.sum(name, labels) - before.sum(name, labels);
  const m = { model: MODEL };
  assert.equal(delta('muse_prompt_tokens_total', m), r.usage.prompt_tokens);
  assert.equal(delta('muse_generation_tokens_total', m), r.usage.completion_tokens);
  assert.equal(delta('muse_requests_total', { ...m, status: '200' }), 1);
  const chatSeries = after.matching('muse_requests_total', { ...m, status: '200' })
    .filter((s) => /chat/.test(s.labels.endpoint ?? ''));
  assert.equal(chatSeries.length, 1, 'no muse_requests_total series with a chat endpoint label');
  assert.equal(delta('muse_request_duration_seconds_count', {}), 1);
  assert.equal(after.value('muse_requests_running', m), 0);
  assert.equal(after.value('muse_queue_depth', m), 0);

  const types = {
    muse_requests_running: 'gauge', muse_queue_depth: 'gauge', muse_requests_total: 'counter',
    muse_prompt_tokens_total: 'counter', muse_generation_tokens_total: 'counter',
    muse_requests_cancelled_total: 'counter', muse_time_to_first_token_seconds: 'histogram',
    muse_inter_token_latency_seconds: 'histogram', muse_request_duration_seconds: 'histogram',
  };
  for (const [name, type] of Object.entries(types)) assert.equal(after.types[name], type, `# TYPE ${name}`);
  // Every histogram series: cumulative buckets ending in +Inf, which equals _count.
  for (const name of ['muse_time_to_first_token_seconds', 'muse_inter_token_latency_seconds',
    'muse_request_duration_seconds']) {
    const counts = after.matching(`${name}_count`);
    assert.ok(counts.length > 0, `${name}_count missing`);
    for (const count of counts) {
      const buckets = after.matching(`${name}_bucket`, count.labels);
      assert.ok(buckets.length > 1, `${name}${JSON.stringify(count.labels)} has no buckets`);
      let previous = 0;
      for (const b of buckets) {
        assert.ok(b.value >= previous, `${name} buckets not cumulative`);
        previous = b.value;
      }
      assert.equal(buckets.at(-1).labels.le, '+Inf');
      assert.equal(buckets.at(-1).value, count.value);
      assert.ok(after.value(`${name}_sum`, count.labels) >= 0);
    }
  }
  assert.ok(delta('muse_time_to_first_token_seconds_count', {}) >= 1, 'time to first token not observed');
  const res = await server.get('/metrics');
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
});

const BASE = { model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 };
const BAD_REQUESTS = [
  ['temperature -1', { ...BASE, temperature: -1 }, 'temperature'],
  ['temperature 3.5', { ...BASE, temperature: 3.5 }, 'temperature'],
  ['top_p 0', { ...BASE, top_p: 0 }, 'top_p'],
  ['n 0', { ...BASE, n: 0 }, 'n'],
  ['max_tokens -5', { ...BASE, max_tokens: -5 }, 'max_tokens'],
  ['messages empty', { ...BASE, messages: [] }],
  ['messages missing', { model: MODEL }],
  ['invalid role', { ...BASE, messages: [{ role: 'wizard', content: 'hi' }] }],
  ['top_logprobs 21', { ...BASE, logprobs: true, top_logprobs: 21 }],
  ['malformed JSON', '{"model": "tiny", "messages": ['],
  ['invalid UTF-8 in the body', Buffer.concat([
    Buffer.from('{"model":"tiny","max_tokens":4,"messages":[{"role":"user","content":"a'),
    Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}]}')])],
  ['JSON nested 200 deep',
    `{"model":"tiny","max_tokens":4,"messages":[{"role":"user","content":"hi"}],"metadata":${
      '['.repeat(200)}${']'.repeat(200)}}`],
];

test('400 invalid_request_error paths', T, async (t) => {
  for (const [name, body, param] of BAD_REQUESTS) {
    await t.test(name, async () => {
      const res = await server.post('/v1/chat/completions', body);
      await expectApiError(res, 400, { type: 'invalid_request_error', ...(param ? { param } : {}) });
    });
  }
  await t.test('prompt longer than the context -> context_length_exceeded', async () => {
    const long = 'hello '.repeat(1500);
    const res = await server.post('/v1/chat/completions',
      { ...BASE, messages: [{ role: 'user', content: long }] });
    await expectApiError(res, 400, { type: 'invalid_request_error', code: 'context_length_exceeded' });
    const res2 = await server.post('/v1/completions', { model: MODEL, prompt: long, max_tokens: 4 });
    await expectApiError(res2, 400, { type: 'invalid_request_error', code: 'context_length_exceeded' });
  });
  await t.test('the SDK raises BadRequestError', async () => {
    await assert.rejects(chat({ messages: USER, temperature: 3.5 }), (e) => e instanceof OpenAI.BadRequestError
      && e.status === 400);
  });
  await t.test('the server still serves', async () => {
    const r = await chat({ messages: USER, max_tokens: 2 });
    assert.equal(r.choices.length, 1);
  });
});

test('404 unknown model', T, async () => {
  const res = await server.post('/v1/chat/completions', { ...BASE, model: 'no-such-model' });
  await expectApiError(res, 404, { code: 'model_not_found' });
  const res2 = await server.post('/v1/completions', { model: 'no-such-model', prompt: 'x', max_tokens: 2 });
  await expectApiError(res2, 404, { code: 'model_not_found' });
  await assert.rejects(client.chat.completions.create({ ...BASE, model: 'no-such-model' }),
    (e) => e instanceof OpenAI.NotFoundError);
  const res3 = await server.get('/v1/no-such-route');
  assert.equal(res3.status, 404);
  await res3.arrayBuffer();
});

test('413 for a body over the limit', T, async (t) => {
  // Over the default max_body_bytes (32 MiB).
  const big = JSON.stringify({ ...BASE, messages: [{ role: 'user', content: 'a'.repeat(33 << 20) }] });
  await t.test('with Content-Length', async () => {
    const res = await server.post('/v1/chat/completions', big);
    await expectApiError(res, 413);
  });
  await t.test('chunked, without Content-Length', async () => {
    const bytes = Buffer.from(big);
    const body = new ReadableStream({
      start(controller) {
        for (let i = 0; i < bytes.length; i += 1 << 20) controller.enqueue(bytes.subarray(i, i + (1 << 20)));
        controller.close();
      },
    });
    const res = await fetch(`${server.baseUrl}/v1/chat/completions`,
      { method: 'POST', headers: server.headers(), body, duplex: 'half' });
    await expectApiError(res, 413);
  });
  await t.test('the server still serves', async () => {
    const r = await chat({ messages: USER, max_tokens: 2 });
    assert.equal(r.choices.length, 1);
  });
});

test('client abort mid-stream frees the sequence and counts a cancellation', T, async () => {
  const m = { model: MODEL };
  const cancelledBefore = (await server.metrics()).sum('muse_requests_cancelled_total', m);
  const controller = new AbortController();
  // prompt + max_tokens must fit the context (1024): the server rejects more with 400.
  const stream = await chat({ messages: USER, max_tokens: 900, temperature: 1, seed: 5, stream: true },
    { signal: controller.signal });
  let chunks = 0;
  let runningDuring;
  try {
    for await (const chunk of stream) {
      assert.equal(chunk.object, 'chat.completion.chunk');
      if (++chunks === 3) {
        runningDuring = (await server.metrics()).value('muse_requests_running', m);
        controller.abort();
      }
    }
  } catch (e) {
    if (!controller.signal.aborted) throw e;
  }
  assert.ok(controller.signal.aborted, `the stream ended by itself after ${chunks} chunks`);
  assert.equal(runningDuring, 1, 'muse_requests_running while streaming');
  const deadline = Date.now() + scaled(5000);
  let metrics;
  for (;;) {
    metrics = await server.metrics();
    const running = metrics.value('muse_requests_running', m);
    const cancelled = metrics.sum('muse_requests_cancelled_total', m);
    if (running === 0 && cancelled > cancelledBefore) break;
    if (Date.now() > deadline) {
      assert.fail(`after abort: muse_requests_running ${running}, cancelled ${cancelledBefore} -> ${cancelled}`);
    }
    await sleep(50);
  }
  assert.equal(metrics.sum('muse_requests_cancelled_total', m), cancelledBefore + 1);
  assert.equal(metrics.value('muse_queue_depth', m), 0);
});

// Stops a server started by a test and checks its exit and log.
async function stopAndCheck(s) {
  const result = await s.stop();
  assert.equal(result.sanitizer, '', `sanitizer report in the server log:\n${result.sanitizer}`);
  assert.ok(!result.timedOut, `no exit within ${scaled(10000)} ms of SIGTERM:\n${result.log.slice(-3000)}`);
  assert.equal(result.code, 0, `exit code ${result.code} signal ${result.signal}:\n${result.log.slice(-3000)}`);
}

test('API keys: 401 invalid_api_key without or with a wrong key', T, async () => {
  const keysFile = join(scratch(), 'keys.txt');
  writeFileSync(keysFile, '# test keys\n\n  sk-muse-test-one  \nsk-muse-test-two\n');
  const s = await startServer({ name: 'auth', flags: ['--api-keys-file', keysFile], apiKey: 'sk-muse-test-one' });
  try {
    const url = `${s.baseUrl}/v1/chat/completions`;
    const body = JSON.stringify(BASE);
    const json = { 'content-type': 'application/json' };
    await expectApiError(await fetch(url, { method: 'POST', headers: json, body }), 401,
      { code: 'invalid_api_key' });
    const post = (authorization) => fetch(url, { method: 'POST', headers: { ...json, authorization }, body });
    await expectApiError(await post('Bearer sk-wrong'), 401, { code: 'invalid_api_key' });
    // A key without the Bearer scheme is no key.
    await expectApiError(await post('sk-muse-test-one'), 401, { code: 'invalid_api_key' });
    await expectApiError(await fetch(`${s.baseUrl}/v1/models`), 401, { code: 'invalid_api_key' });
    for (const key of ['sk-muse-test-one', 'sk-muse-test-two']) {
      const res = await post(`Bearer ${key}`);
      const text = await res.text();
      assert.equal(res.status, 200, `key ${key}: ${text}`);
      assert.equal(JSON.parse(text).object, 'chat.completion');
    }
    const health = await fetch(`${s.baseUrl}/health`);
    assert.equal(health.status, 200);
    await health.arrayBuffer();
    const metricsNoKey = await fetch(`${s.baseUrl}/metrics`);
    assert.equal(metricsNoKey.status, 401);
    await metricsNoKey.arrayBuffer();
    assert.ok((await s.metrics()).samples.length > 0);
    await assert.rejects(s.client({ apiKey: 'sk-wrong' }).models.list(),
      (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
    const models = await s.client().models.list();
    assert.ok(models.data.some((m) => m.id === MODEL));
  } finally {
    await stopAndCheck(s);
  }
});

test('503 with Retry-After when the queue is full', T, async () => {
  const s = await startServer({ name: 'queue', flags: ['--parallel', '1', '--max-queue', '1'] });
  try {
    const body = { model: MODEL, messages: USER, max_tokens: 800, temperature: 1, seed: 3 };
    const results = await Promise.all(Array.from({ length: 10 }, async () => {
      const res = await s.post('/v1/chat/completions', body);
      if (res.status === 503) {
        const retryAfter = res.headers.get('retry-after');
        await expectApiError(res, 503);
        return { status: 503, retryAfter };
      }
      const text = await res.text();
      return { status: res.status, text };
    }));
    const statuses = results.map((r) => r.status);
    assert.ok(statuses.every((st) => st === 200 || st === 503),
      `statuses ${statuses}: ${JSON.stringify(results)}`);
    const rejected = results.filter((r) => r.status === 503);
    assert.ok(rejected.length >= 1, `no 503 among ${statuses}`);
    assert.ok(statuses.filter((st) => st === 200).length >= 2, `running + queued should succeed: ${statuses}`);
    for (const r of rejected) assert.match(r.retryAfter ?? '', /^\d+$/, 'Retry-After must be delay-seconds');
    for (const r of results.filter((x) => x.status === 200)) {
      assert.equal(JSON.parse(r.text).choices.length, 1);
    }
    const metrics = await s.metrics();
    assert.equal(metrics.sum('muse_requests_total', { status: '503' }), rejected.length);
    assert.equal(metrics.value('muse_queue_depth', { model: MODEL }), 0);
    assert.equal(metrics.value('muse_requests_running', { model: MODEL }), 0);
    // The SDK (retries off) surfaces the 503 as an APIError... when one occurs again.
    const sdk = s.client();
    const outcomes = await Promise.allSettled(Array.from({ length: 6 },
      () => sdk.chat.completions.create(body)));
    for (const o of outcomes) {
      if (o.status === 'rejected') assert.equal(o.reason.status, 503, String(o.reason));
    }
  } finally {
    await stopAndCheck(s);
  }
});
// The README's two examples, run as written against this server (only the address and the
// model name differ: the README's are `make run`'s).
test('README examples: curl and the openai SDK script work', T, async () => {
  const readme = fs.readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
  const curlBlock = readme.match(/```sh\n(curl [\s\S]*?)```/);
  assert.ok(curlBlock, 'README has a curl example');
  const curl = curlBlock[1]
    .replaceAll('http://127.0.0.1:8080', server.baseUrl)
    .replaceAll('muse-nano', MODEL);
  const r = spawnSync('bash', ['-c', curl], { encoding: 'utf8', timeout: scaled(60000) });
  assert.equal(r.status, 0, r.stderr);
  const body = JSON.parse(r.stdout);
  assert.equal(body.object, 'chat.completion');
  assert.equal(typeof body.choices[0].message.content, 'string');

  assert.ok(readme.includes('node tests/server/node/examples/chat.mjs'));
  const example = new URL('./examples/chat.mjs', import.meta.url).pathname;
  const run = await new Promise((resolve) => {
    const child = spawn(process.execPath, [example], {
      env: { ...process.env, OPENAI_BASE_URL: `${server.baseUrl}/v1`, MUSE_MODEL: MODEL },
    });
    let out = '', err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('exit', (code) => resolve({ code, out, err }));
  });
  assert.equal(run.code, 0, run.err);
  assert.ok(run.out.length > 1, 'the example printed text');
});


test('SIGTERM: the server exits 0 promptly with a clean log', T, async () => {
  await stopAndCheck(server);
});

// ---------------------------------------------------------------------------------------
// Muse Nano, the shipped default model (models/muse-nano.gguf): meaning end to end. Its
// inputs are held-out evaluation items (tests/data/muse-nano, train/eval_nano.py), so the
// expected words come from how they were made, not from a previous run.
const NANO_DIR = new URL('../../data/muse-nano/', import.meta.url).pathname;
const NANO_MODEL = new URL('../../../models/muse-nano.gguf', import.meta.url).pathname;
const NANO_CASES = JSON.parse(fs.readFileSync(join(NANO_DIR, 'cases.json'), 'utf8'));
const NANO_WEATHER_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather', description: 'Get the current weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};
let nanoServer;
async function nano() {
  if (!nanoServer) nanoServer = await startServer({ name: 'muse-nano', modelFile: NANO_MODEL });
  return nanoServer.client();
}
after(async () => {
  if (nanoServer && !nanoServer.exited) await stopAndCheck(nanoServer);
});
const nanoCase = (task) => {
  const c = NANO_CASES.find((x) => x.task === task);
  assert.ok(c, `tests/data/muse-nano has a ${task} case`);
  return c;
};
// The case's user turn as OpenAI content parts (its PNG / WAV as base64).
const nanoContent = (c) => c.messages.at(-1).content.map((p) => {
  if (p.type === 'text') return { type: 'text', text: p.text };
  const data = fs.readFileSync(join(NANO_DIR, p.file)).toString('base64');
  return p.type === 'image'
    ? { type: 'image_url', image_url: { url: `data:image/png;base64,${data}` } }
    : { type: 'input_audio', input_audio: { data, format: 'wav' } };
});

test('muse nano: an image of a shape is described by its colour and shape', T, async () => {
  const c = nanoCase('shape/colour naming');
  const r = await (await nano()).chat.completions.create({
    model: MODEL, temperature: 0, max_tokens: 24,
    messages: [{ role: 'user', content: nanoContent(c) }],
  });
  const text = r.choices[0].message.content.toLowerCase();
  assert.match(text, new RegExp(`\\b${c.facts.color}\\b`), text);
  assert.match(text, new RegExp(`\\b${c.facts.shape}\\b`), text);
  assert.equal(r.choices[0].finish_reason, 'stop');
});

test('muse nano: a spoken digit in input_audio is heard', T, async () => {
  const c = nanoCase('spoken digits');
  const r = await (await nano()).chat.completions.create({
    model: MODEL, temperature: 0, max_tokens: 16,
    messages: [{ role: 'user', content: nanoContent(c) }],
  });
  const text = r.choices[0].message.content;
  assert.deepEqual(text.match(/\d+/g), [String(c.facts.value)], text);
  assert.ok(r.usage.prompt_tokens > 20, 'the clip became many prompt positions');
});

test('muse nano: a weather question becomes a structured get_weather call', T, async () => {
  for (const city of ['Tokyo', 'Buenos Aires']) {
    const r = await (await nano()).chat.completions.create({
      model: MODEL, temperature: 0, max_tokens: 40, tools: [NANO_WEATHER_TOOL],
      messages: [{ role: 'user', content: `What's the weather in ${city}?` }],
    });
    const choice = r.choices[0];
    assert.equal(choice.finish_reason, 'tool_calls');
    assert.equal(choice.message.tool_calls.length, 1);
    const call = choice.message.tool_calls[0];
    assert.equal(call.type, 'function');
    assert.equal(call.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(call.function.arguments), { city });
  }
});
