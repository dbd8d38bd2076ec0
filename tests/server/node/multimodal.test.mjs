// Images and audio through `muse serve` with the `openai` SDK: Qwen2.5-Omni and Muse
// Glimmer test models (random weights at small shapes, a real vocabulary and each model's
// chat template, made by `muse debug make-model` + `muse convert --mmproj`; see
// tests/e2e/CMakeLists-models.cmake). The server's answers are compared with
// `muse run --chat` (the engine driven directly on the same messages), and a hostile-input
// suite checks that bad media gets a clear 4xx while the server keeps serving.
//   MUSE_BIN=... MUSE_SHARED_DIR=... MUSE_TEST_MODELS_DIR=... node --test multimodal.test.mjs
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { MODEL, MUSE_BIN, SHARED_DIR, scaled, scratch, startServer } from './harness.mjs';
import { expectApiError } from './openai_checks.mjs';

const T = { timeout: scaled(180000) };
const MODELS_DIR = process.env.MUSE_TEST_MODELS_DIR;
if (!MODELS_DIR) throw new Error('environment variable MUSE_TEST_MODELS_DIR is required');
const OMNI = { model: path.join(MODELS_DIR, 'omni-test.gguf'), mmproj: path.join(MODELS_DIR, 'omni-test-mmproj.gguf') };
const GLIMMER = { model: path.join(MODELS_DIR, 'glimmer-test.gguf'), mmproj: path.join(MODELS_DIR, 'glimmer-test-mmproj.gguf') };

const PNG = fs.readFileSync(path.join(SHARED_DIR, 'goldens/qwen25omni/image.png'));
const WAV = fs.readFileSync(path.join(SHARED_DIR, 'goldens/qwen25omni/audio.wav'));
const PNG_640 = fs.readFileSync(path.join(SHARED_DIR, 'goldens/media/image1_640x480.png'));
const dataUrl = (bytes, type = 'image/png') => `data:${type};base64,${bytes.toString('base64')}`;
const imagePart = (bytes, extra = {}) => ({ type: 'image_url', image_url: { url: dataUrl(bytes), ...extra } });
const audioPart = (bytes, format = 'wav') => ({ type: 'input_audio', input_audio: { data: bytes.toString('base64'), format } });

// A WAV file of 16-bit mono samples; `claimedBytes` overrides the data chunk's size field.
function wav(samples, rate = 16000, claimedBytes) {
  const data = Buffer.alloc(samples.length * 2);
  samples.forEach((v, i) => data.writeInt16LE(Math.max(-32768, Math.min(32767, Math.round(v * 32767))), i * 2));
  const h = Buffer.alloc(44);
  h.write('RIFF', 0); h.writeUInt32LE(36 + data.length, 4); h.write('WAVE', 8);
  h.write('fmt ', 12); h.writeUInt32LE(16, 16); h.writeUInt16LE(1, 20); h.writeUInt16LE(1, 22);
  h.writeUInt32LE(rate, 24); h.writeUInt32LE(rate * 2, 28); h.writeUInt16LE(2, 32); h.writeUInt16LE(16, 34);
  h.write('data', 36); h.writeUInt32LE(claimedBytes ?? data.length, 40);
  return Buffer.concat([h, data]);
}
// 8-bit unsigned PCM: 11 minutes at 8 kHz is 5.3 MB, over the default 600 s limit.
function wav8(seconds, rate = 8000) {
  const n = Math.round(seconds * rate);
  const h = Buffer.alloc(44);
  h.write('RIFF', 0); h.writeUInt32LE(36 + n, 4); h.write('WAVE', 8);
  h.write('fmt ', 12); h.writeUInt32LE(16, 16); h.writeUInt16LE(1, 20); h.writeUInt16LE(1, 22);
  h.writeUInt32LE(rate, 24); h.writeUInt32LE(rate, 28); h.writeUInt16LE(1, 32); h.writeUInt16LE(8, 34);
  h.write('data', 36); h.writeUInt32LE(n, 40);
  const data = Buffer.alloc(n, 128);
  for (let i = 0; i < n; i += 7) data[i] = 128 + ((i >> 3) % 64);
  return Buffer.concat([h, data]);
}
const tone = (seconds, rate = 16000) =>
  Array.from({ length: Math.round(seconds * rate) }, (_, i) => 0.3 * Math.sin(2 * Math.PI * 440 * i / rate));

// A PNG that is only a signature and an IHDR chunk of the given size (no pixel data).
function pngHeaderOnly(width, height) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; ++k) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const body = Buffer.alloc(17);
  body.write('IHDR', 0); body.writeUInt32BE(width, 4); body.writeUInt32BE(height, 8);
  body[12] = 8; body[13] = 2; // 8-bit RGB
  const len = Buffer.alloc(4); len.writeUInt32BE(13);
  const c = Buffer.alloc(4); c.writeUInt32BE(crc(body));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), len, body, c]);
}

// `muse run --chat`: the engine directly on the same messages (greedy).
function engineRun(files, messages, maxTokens) {
  const file = path.join(scratch(), `messages-${Date.now()}-${Math.random()}.json`);
  fs.writeFileSync(file, JSON.stringify(messages));
  const args = ['run', '-m', files.model, '--mmproj', files.mmproj, '--chat', file, '-n',
    String(maxTokens), '--temp', '0', '-c', '1024'];
  const r = spawnSync(MUSE_BIN, args, { encoding: 'utf8', timeout: scaled(120000) });
  assert.equal(r.status, 0, `muse ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

// A local HTTP server for image URLs: /image.png, /redirect-to?u=..., /slow.
let files;
let omni;
let glimmer;
let guarded; // an omni server with default URL rules (loopback refused)

before(async () => {
  files = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/image.png') {
      res.writeHead(200, { 'content-type': 'image/png' });
      res.end(PNG);
    } else if (url.pathname === '/redirect-to') {
      res.writeHead(302, { location: url.searchParams.get('u') });
      res.end();
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((resolve) => files.listen(0, '127.0.0.1', resolve));
  const port = files.address().port;
  const config = path.join(scratch(), 'media.toml');
  fs.writeFileSync(config, `[media]\nallowed_hosts = ["127.0.0.1:${port}"]\nmax_audio_seconds = 20\n` +
    'max_image_pixels = 4000000\n');
  const common = ['--parallel', '2', '--ctx-size', '1024', '--max-body-bytes', String(32 << 20)];
  omni = await startServer({ name: 'omni', modelFile: OMNI.model, flags: [...common, '--mmproj', OMNI.mmproj, '--config', config] });
  glimmer = await startServer({ name: 'glimmer', modelFile: GLIMMER.model, flags: [...common, '--mmproj', GLIMMER.mmproj] });
  guarded = await startServer({ name: 'guarded', modelFile: OMNI.model, flags: [...common, '--mmproj', OMNI.mmproj] });
});

after(async () => {
  for (const s of [omni, glimmer, guarded]) if (s && !s.exited) await s.stop();
  files?.close();
});

const filesUrl = (p) => `http://127.0.0.1:${files.address().port}${p}`;
const greedy = (messages, maxTokens = 8) => ({ model: MODEL, messages, temperature: 0, max_tokens: maxTokens });
const withLogprobs = (messages, maxTokens) => ({ ...greedy(messages, maxTokens), logprobs: true, top_logprobs: 5 });

// The server's choice equals the engine run: same text, prompt length and, token by
// token, the same log-probabilities (these random-weight models have flat distributions,
// so the values, not just the argmax, are what depends on every image and audio row).
function assertSameAsEngine(res, want) {
  assert.equal(res.choices[0].message.content, want.text);
  assert.equal(res.usage.prompt_tokens, want.prompt_tokens);
  const got = res.choices[0].logprobs.content;
  assert.equal(got.length, want.logprobs.length);
  got.forEach((t, i) => {
    assert.ok(Math.abs(t.logprob - want.logprobs[i].logprob) < 1e-4,
      `token ${i}: logprob ${t.logprob} vs engine ${want.logprobs[i].logprob}`);
  });
}

test('omni: text + image + audio in one request equals the engine run', T, async () => {
  const messages = [{ role: 'user', content: [
    { type: 'text', text: 'What do you see and hear?' }, imagePart(PNG), audioPart(WAV)] }];
  const res = await omni.client().chat.completions.create(withLogprobs(messages, 8));
  const want = engineRun(OMNI, messages, 8);
  assertSameAsEngine(res, want);
  // 12 image rows + 62 audio rows (2.5 s at 25 per second) are in the prompt.
  assert.ok(res.usage.prompt_tokens > 12 + 62, `prompt_tokens ${res.usage.prompt_tokens}`);
  // And they matter: another image gives other log-probabilities.
  const other = [{ role: 'user', content: [
    { type: 'text', text: 'What do you see and hear?' }, imagePart(PNG_640, { detail: 'low' }), audioPart(WAV)] }];
  const res2 = await omni.client().chat.completions.create(withLogprobs(other, 1));
  assert.ok(Math.abs(res2.choices[0].logprobs.content[0].logprob - want.logprobs[0].logprob) > 1e-5);
});

test('omni: streaming gives the same text', T, async () => {
  const messages = [{ role: 'user', content: [audioPart(WAV), { type: 'text', text: 'Transcribe.' }] }];
  const stream = await omni.client().chat.completions.create({ ...greedy(messages), stream: true });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
  assert.equal(text, engineRun(OMNI, messages, 8).text);
});

test('omni: media in any order, several per message and across turns', T, async () => {
  const messages = [
    { role: 'system', content: 'You are a careful observer.' },
    { role: 'user', content: [imagePart(PNG), { type: 'text', text: 'and' }, imagePart(PNG_640, { detail: 'low' })] },
    { role: 'assistant', content: 'Two pictures.' },
    { role: 'user', content: [audioPart(WAV), { type: 'text', text: 'Now this sound, and this picture:' }, imagePart(PNG)] },
  ];
  const res = await omni.client().chat.completions.create(withLogprobs(messages, 6));
  assertSameAsEngine(res, engineRun(OMNI, messages, 6));
});

test('omni: the next turn reuses the cached prefix, images included', T, async () => {
  const first = [{ role: 'user', content: [imagePart(PNG), { type: 'text', text: 'Describe it.' }] }];
  const a = await omni.client().chat.completions.create(greedy(first, 4));
  const next = [...first, { role: 'assistant', content: a.choices[0].message.content },
    { role: 'user', content: 'More detail, please.' }];
  const b = await omni.client().chat.completions.create(greedy(next, 4));
  assert.ok(b.usage.prompt_tokens_details.cached_tokens >= a.usage.prompt_tokens - 1,
    `cached ${b.usage.prompt_tokens_details.cached_tokens} of ${b.usage.prompt_tokens}`);
  // Another image at the same place: no reuse past the start of the image.
  const other = [{ role: 'user', content: [imagePart(PNG_640), { type: 'text', text: 'Describe it.' }] }];
  const c = await omni.client().chat.completions.create(greedy(other, 4));
  assert.ok(c.usage.prompt_tokens_details.cached_tokens < 30, `cached ${c.usage.prompt_tokens_details.cached_tokens}`);
});

test('omni: image_url from an http URL (allowed host) equals the data URL', T, async () => {
  const byUrl = [{ role: 'user', content: [{ type: 'image_url', image_url: { url: filesUrl('/image.png') } }, { type: 'text', text: 'Hi' }] }];
  const byData = [{ role: 'user', content: [imagePart(PNG), { type: 'text', text: 'Hi' }] }];
  const a = await omni.client().chat.completions.create(withLogprobs(byUrl, 4));
  const b = await omni.client().chat.completions.create(withLogprobs(byData, 4));
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
  assert.equal(a.choices[0].logprobs.content[0].logprob, b.choices[0].logprobs.content[0].logprob);
});

test('glimmer: an image request equals the engine run', T, async () => {
  const messages = [{ role: 'user', content: [imagePart(PNG), { type: 'text', text: 'What shape is this?' }] }];
  const res = await glimmer.client().chat.completions.create(withLogprobs(messages, 8));
  assertSameAsEngine(res, engineRun(GLIMMER, messages, 8));
});

test('glimmer: audio is refused with unsupported_content_type', T, async () => {
  const res = await glimmer.post('/v1/chat/completions', greedy([{ role: 'user', content: [audioPart(WAV)] }]));
  await expectApiError(res, 400, { code: 'unsupported_content_type' });
});

// Each hostile input gets a 4xx with an OpenAI error body; the server keeps serving.
const hostile = [
  ['SSRF: loopback URL', 'guarded', 400, () => [{ type: 'image_url', image_url: { url: filesUrl('/image.png') } }]],
  ['SSRF: metadata address', 'guarded', 400, () => [{ type: 'image_url', image_url: { url: 'http://169.254.169.254/latest/meta-data/' } }]],
  ['SSRF: localhost name', 'guarded', 400, () => [{ type: 'image_url', image_url: { url: 'http://localhost:1/x.png' } }]],
  ['SSRF: redirect to loopback', 'omni', 400, () => [{ type: 'image_url', image_url: { url: filesUrl(`/redirect-to?u=${encodeURIComponent('http://127.0.0.1:1/x.png')}`) } }]],
  ['SSRF: redirect to metadata', 'omni', 400, () => [{ type: 'image_url', image_url: { url: filesUrl(`/redirect-to?u=${encodeURIComponent('http://169.254.169.254/')}`) } }]],
  ['non-http scheme', 'omni', 400, () => [{ type: 'image_url', image_url: { url: 'file:///etc/passwd' } }]],
  ['truncated PNG', 'omni', 400, () => [imagePart(PNG.subarray(0, PNG.length >> 1))]],
  ['garbage image', 'omni', 400, () => [imagePart(Buffer.from('this is not an image at all, just text'))]],
  ['20000x20000 PNG', 'omni', 413, () => [imagePart(pngHeaderOnly(20000, 20000))]],
  ['truncated WAV', 'omni', 400, () => [audioPart(WAV.subarray(0, 30))]],
  ['garbage audio', 'omni', 400, () => [audioPart(Buffer.from('RIFF....WAVEjunkjunkjunkjunk'))]],
  ['WAV header claiming hours', 'omni', 400, () => [audioPart(wav(tone(0.5), 16000, 0x7ffff000))]],
  ['audio beyond the length limit', 'omni', 413, () => [audioPart(wav(tone(25), 8000))]],
  ['11 minutes of audio (default limit 600 s)', 'guarded', 413, () => [audioPart(wav8(660))]],
  ['malformed base64 audio', 'omni', 400, () => [{ type: 'input_audio', input_audio: { data: 'abc$%^&*', format: 'wav' } }]],
  ['malformed base64 image', 'omni', 400, () => [{ type: 'image_url', image_url: { url: 'data:image/png;base64,@@@@' } }]],
  ['data URL without base64', 'omni', 400, () => [{ type: 'image_url', image_url: { url: 'data:image/png,hello' } }]],
];

for (const [name, which, status, parts] of hostile) {
  test(`hostile input: ${name} -> ${status}`, T, async () => {
    const server = which === 'guarded' ? guarded : omni;
    const res = await server.post('/v1/chat/completions',
      greedy([{ role: 'user', content: [...parts(), { type: 'text', text: 'hi' }] }], 2));
    await expectApiError(res, status);
  });
}

test('after the hostile inputs every server still serves', T, async () => {
  for (const s of [omni, guarded, glimmer]) {
    assert.equal((await s.get('/health')).status, 200);
    const res = await s.client().chat.completions.create(
      greedy([{ role: 'user', content: [imagePart(PNG), { type: 'text', text: 'ok?' }] }], 2));
    assert.equal(res.choices.length, 1);
  }
  for (const s of [omni, guarded, glimmer]) {
    const r = await s.stop();
    assert.equal(r.code, 0, r.log);
    assert.equal(r.sanitizer, '');
  }
});
