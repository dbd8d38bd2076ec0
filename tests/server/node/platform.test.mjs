// Keys, tiers, limits and usage of `muse serve --store` through the official openai SDK,
// on SQLite and on a real PostgreSQL (URL in the file named by MUSE_TEST_PG_URL_FILE,
// written by the CTest fixture `postgres`): the admin key lifecycle, the waitlist, 401s,
// 404 for a model outside the tier, 429s with OpenAI's headers, the monthly quota, usage
// equal to what clients were told, and two servers on one PostgreSQL sharing ONE limit.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import OpenAI from 'openai';

import { MODEL, scaled, scratch, sleep, startServer } from './harness.mjs';

const ADMIN_KEY = `admin-${crypto.randomBytes(12).toString('hex')}`;
// PostgreSQL keeps its rows between runs of the fixture: names are unique per run.
const RUN = crypto.randomBytes(4).toString('hex');

function adminKeyFile() {
  const file = path.join(scratch(), 'admin.key');
  fs.writeFileSync(file, `${ADMIN_KEY}\n`);
  return file;
}

function postgresUrl() {
  const file = process.env.MUSE_TEST_PG_URL_FILE;
  if (!file) return null;
  assert.ok(fs.existsSync(file), `MUSE_TEST_PG_URL_FILE=${file} does not exist (fixture postgres)`);
  return fs.readFileSync(file, 'utf8').trim();
}

async function platformServer(store, name) {
  return startServer({
    name,
    flags: ['--store', store, '--admin-key-file', adminKeyFile(), '--parallel', '2',
      '--ctx-size', '256'],
  });
}

async function admin(server, method, route, body) {
  const res = await fetch(`${server.baseUrl}${route}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json();
  return { status: res.status, json };
}

async function addTier(server, tier) {
  const r = await admin(server, 'POST', '/admin/tiers', tier);
  assert.equal(r.status, 200, JSON.stringify(r.json));
}

async function issueKey(server, tier) {
  const r = await admin(server, 'POST', '/admin/keys', { name: `customer-${RUN}`, tier });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  assert.match(r.json.secret, /^sk-muse-/);
  return r.json;
}

function sdk(server, apiKey) {
  return new OpenAI({ baseURL: `${server.baseUrl}/v1`, apiKey, maxRetries: 0,
    timeout: scaled(120000) });
}

const chatParams = { model: MODEL, messages: [{ role: 'user', content: 'Hello there' }],
  max_tokens: 4, temperature: 0 };

// Rate windows are fixed minutes: start a burst early enough in one that it cannot
// straddle two.
async function freshWindow(budgetSeconds = 20) {
  const second = new Date().getUTCSeconds();
  if (second > 60 - budgetSeconds) await sleep((61 - second) * 1000);
}

async function expectStatus(promise, status, check = () => {}) {
  await assert.rejects(promise, (err) => {
    assert.equal(err.status, status, String(err));
    check(err);
    return true;
  });
}

async function lifecycle(store, label) {
  const server = await platformServer(store, `platform-${label}`);
  try {
    // Admin API: anything but the admin key is 401.
    const denied = await fetch(`${server.baseUrl}/admin/keys`);
    assert.equal(denied.status, 401);

    const tier = `t-${RUN}-${label}`;
    await addTier(server, { name: tier, requests_per_minute: 3, tokens_per_minute: 100000,
      models: [MODEL], priority: 1 });
    const key = await issueKey(server, tier);
    const listed = await admin(server, 'GET', '/admin/keys');
    const entry = listed.json.data.find((k) => k.id === key.id);
    assert.ok(entry, 'issued key is listed');
    assert.equal(entry.secret, undefined, 'secrets are shown once');

    // A working key, with OpenAI's rate-limit headers; 4th request in the minute is 429.
    await freshWindow();
    const client = sdk(server, key.secret);
    let prompt = 0;
    let completion = 0;
    for (let i = 0; i < 3; i++) {
      const { data, response } = await client.chat.completions.create(chatParams).withResponse();
      assert.equal(response.headers.get('x-ratelimit-limit-requests'), '3');
      assert.equal(response.headers.get('x-ratelimit-remaining-requests'), String(2 - i));
      assert.match(response.headers.get('x-ratelimit-reset-requests'), /^\d+s$/);
      assert.equal(response.headers.get('x-ratelimit-limit-tokens'), '100000');
      prompt += data.usage.prompt_tokens;
      completion += data.usage.completion_tokens;
    }
    await expectStatus(client.chat.completions.create(chatParams), 429, (err) => {
      assert.ok(err instanceof OpenAI.RateLimitError);
      assert.equal(err.code, 'rate_limit_exceeded');
      assert.equal(err.type, 'requests');
      const h = err.headers;
      const retry = Number(typeof h?.get === 'function' ? h.get('retry-after') : h['retry-after']);
      assert.ok(retry >= 1 && retry <= 60, `Retry-After ${retry}`);
    });

    // Usage rows equal the usage the client was told (the 429 served nothing).
    const usage = await admin(server, 'GET', `/admin/usage?key=${key.id}`);
    assert.equal(usage.status, 200);
    assert.equal(usage.json.totals.requests, 3);
    assert.equal(usage.json.totals.prompt_tokens, prompt);
    assert.equal(usage.json.totals.completion_tokens, completion);
    assert.equal(usage.json.data[0].model, MODEL);

    // A model outside the tier is 404; an unknown key 401; a revoked key 401.
    const narrow = `n-${RUN}-${label}`;
    await addTier(server, { name: narrow, models: ['another-model'] });
    const narrowKey = await issueKey(server, narrow);
    await expectStatus(sdk(server, narrowKey.secret).chat.completions.create(chatParams), 404,
      (err) => assert.equal(err.code, 'model_not_found'));
    await expectStatus(sdk(server, 'sk-muse-unknown').chat.completions.create(chatParams), 401,
      (err) => assert.equal(err.code, 'invalid_api_key'));
    const revoked = await admin(server, 'DELETE', `/admin/keys/${narrowKey.id}`);
    assert.equal(revoked.status, 200);
    await expectStatus(sdk(server, narrowKey.secret).chat.completions.create(chatParams), 401,
      (err) => assert.match(err.message, /revoked/));

    // Waitlist: apply (public), approve, the issued key works.
    const bad = await fetch(`${server.baseUrl}/v1/access-requests`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'Ada', email: 'not-an-email', use_case: 'x' }),
    });
    assert.equal(bad.status, 400);
    const applied = await fetch(`${server.baseUrl}/v1/access-requests`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: `Ada ${RUN}`, email: 'ada@example.com', use_case: 'research' }),
    });
    assert.equal(applied.status, 201);
    const request = await applied.json();
    assert.equal(request.status, 'pending');
    const pending = await admin(server, 'GET', '/admin/access-requests?status=pending');
    assert.ok(pending.json.data.some((r) => r.id === request.id));
    const approved = await admin(server, 'POST', `/admin/access-requests/${request.id}/approve`,
      { tier });
    assert.equal(approved.status, 200, JSON.stringify(approved.json));
    const completionOk = await sdk(server, approved.json.key.secret).chat.completions.create(chatParams);
    assert.equal(completionOk.object, 'chat.completion');

    // Monthly quota: 20 tokens, two requests of exactly 10, then insufficient_quota.
    const quota = `q-${RUN}-${label}`;
    await addTier(server, { name: quota, monthly_tokens: 20 });
    const quotaKey = await issueKey(server, quota);
    const body = { model: MODEL, prompt: [100, 101, 102, 103, 104], max_tokens: 5,
      ignore_eos: true, temperature: 0 };
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${server.baseUrl}/v1/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${quotaKey.secret}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      assert.equal(res.status, 200);
      assert.equal((await res.json()).usage.total_tokens, 10);
    }
    await expectStatus(sdk(server, quotaKey.secret).completions.create(body), 429,
      (err) => assert.equal(err.code, 'insufficient_quota'));
  } finally {
    const stopped = await server.stop();
    assert.equal(stopped.sanitizer, '', stopped.sanitizer);
  }
}

test('key lifecycle, waitlist, limits, quota and usage on SQLite', async () => {
  await lifecycle(`sqlite:${path.join(scratch(), `store-${RUN}.db`)}`, 'sqlite');
});

const pg = postgresUrl();

test('key lifecycle, waitlist, limits, quota and usage on PostgreSQL',
  { skip: pg ? false : 'MUSE_TEST_PG_URL_FILE is not set (run through CTest)' }, async () => {
    await lifecycle(pg, 'pg');
  });

test('two servers on one PostgreSQL enforce one shared rate limit',
  { skip: pg ? false : 'MUSE_TEST_PG_URL_FILE is not set (run through CTest)' }, async () => {
    const a = await platformServer(pg, 'replica-a');
    const b = await platformServer(pg, 'replica-b');
    try {
      const tier = `shared-${RUN}`;
      await addTier(a, { name: tier, requests_per_minute: 4 });
      const key = await issueKey(b, tier);  // issued on one replica, used on both
      await freshWindow();
      const clients = [sdk(a, key.secret), sdk(b, key.secret)];
      for (let i = 0; i < 4; i++) {
        const { response } = await clients[i % 2].chat.completions.create(chatParams).withResponse();
        assert.equal(response.headers.get('x-ratelimit-remaining-requests'), String(3 - i));
      }
      for (const client of clients) {
        await expectStatus(client.chat.completions.create(chatParams), 429,
          (err) => assert.equal(err.code, 'rate_limit_exceeded'));
      }
      // Both replicas recorded their share of the usage in the one store.
      const usage = await admin(a, 'GET', `/admin/usage?key=${key.id}`);
      assert.equal(usage.json.totals.requests, 4);
    } finally {
      for (const s of [a, b]) {
        const stopped = await s.stop();
        assert.equal(stopped.sanitizer, '', stopped.sanitizer);
      }
    }
  });
