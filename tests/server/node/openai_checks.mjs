// Strict checks of OpenAI wire shapes shared by the conformance and load tests.
import assert from 'node:assert/strict';

// Checks an error response: `status`, JSON body {"error":{"message","type","param","code"}}.
// Returns the error object.
export async function expectApiError(res, status, { type, code, param } = {}) {
  const text = await res.text();
  assert.equal(res.status, status, `expected HTTP ${status}, got ${res.status}: ${text}`);
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    assert.fail(`error body is not JSON: ${JSON.stringify(text.slice(0, 300))}`);
  }
  assert.equal(typeof body.error, 'object', `no "error" object in ${text}`);
  const err = body.error;
  assert.equal(typeof err.message, 'string', `error.message: ${text}`);
  assert.ok(err.message.length > 0, 'error.message is empty');
  assert.equal(typeof err.type, 'string', `error.type: ${text}`);
  assert.ok('param' in err, `error.param missing: ${text}`);
  assert.ok('code' in err, `error.code missing: ${text}`);
  assert.ok(err.param === null || typeof err.param === 'string', `error.param: ${text}`);
  assert.ok(err.code === null || typeof err.code === 'string', `error.code: ${text}`);
  if (type !== undefined) assert.equal(err.type, type, `error.type in ${text}`);
  if (code !== undefined) assert.equal(err.code, code, `error.code in ${text}`);
  if (param !== undefined) assert.equal(err.param, param, `error.param in ${text}`);
  return err;
}

export function checkUsage(usage, { maxCompletion } = {}) {
  assert.equal(typeof usage, 'object');
  assert.ok(usage !== null, 'usage is null');
  for (const k of ['prompt_tokens', 'completion_tokens', 'total_tokens']) {
    assert.ok(Number.isInteger(usage[k]) && usage[k] >= 0, `usage.${k} = ${usage[k]}`);
  }
  assert.ok(usage.prompt_tokens > 0, 'usage.prompt_tokens is 0');
  assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens, 'usage.total_tokens');
  if (maxCompletion !== undefined) assert.ok(usage.completion_tokens <= maxCompletion);
}

// Parses and checks the events of a chat completion stream (payloads before [DONE]).
// Returns { id, choices: [{role, content, finish_reason, tool_calls, logprobs}], usage }.
export function assembleChatStream(events, { includeUsage = false, model = 'tiny' } = {}) {
  assert.ok(events.length > 0, 'stream has no events');
  const chunks = events.map((e) => JSON.parse(e));
  const first = chunks[0];
  assert.equal(typeof first.id, 'string');
  assert.ok(first.id.length > 0);
  const choices = [];
  let usage = null;
  chunks.forEach((chunk, i) => {
    const where = `chunk ${i}: ${JSON.stringify(chunk)}`;
    assert.equal(chunk.object, 'chat.completion.chunk', where);
    assert.equal(chunk.id, first.id, `id changes within the stream (${where})`);
    assert.equal(chunk.created, first.created, `created changes (${where})`);
    assert.ok(Number.isInteger(chunk.created), where);
    assert.equal(chunk.model, model, where);
    assert.ok(Array.isArray(chunk.choices), where);
    const isLast = i === chunks.length - 1;
    if (includeUsage && isLast) {
      assert.deepEqual(chunk.choices, [], `usage chunk must have empty choices (${where})`);
      checkUsage(chunk.usage);
      usage = chunk.usage;
      return;
    }
    assert.ok(chunk.usage === null || chunk.usage === undefined,
      `only the final usage chunk may carry usage (${where})`);
    assert.ok(chunk.choices.length > 0, `chunk without choices (${where})`);
    for (const c of chunk.choices) {
      assert.ok(Number.isInteger(c.index) && c.index >= 0, where);
      assert.equal(typeof c.delta, 'object', where);
      let state = choices[c.index];
      if (!state) {
        assert.equal(c.delta.role, 'assistant', `first delta of choice ${c.index} lacks role (${where})`);
        state = { role: 'assistant', content: '', finish_reason: null, tool_calls: [], logprobs: [],
          sawContent: false };
        choices[c.index] = state;
      } else {
        assert.ok(c.delta.role === undefined, `role repeated for choice ${c.index} (${where})`);
      }
      assert.equal(state.finish_reason, null, `choice ${c.index} continues after finish_reason (${where})`);
      if (c.delta.content !== undefined && c.delta.content !== null) {
        assert.equal(typeof c.delta.content, 'string', where);
        state.content += c.delta.content;
        state.sawContent = true;
      }
      if (c.delta.tool_calls) addToolDeltas(state, c.delta.tool_calls, where);
      if (c.logprobs && c.logprobs.content) state.logprobs.push(...c.logprobs.content);
      if (c.finish_reason !== null && c.finish_reason !== undefined) {
        assert.ok(['stop', 'length', 'tool_calls', 'content_filter'].includes(c.finish_reason), where);
        state.finish_reason = c.finish_reason;
      }
    }
  });
  choices.forEach((c, i) => {
    assert.ok(c, `no chunk for choice ${i}`);
    assert.notEqual(c.finish_reason, null, `choice ${i} has no finish_reason`);
  });
  if (includeUsage) assert.ok(usage, 'no usage chunk');
  return { id: first.id, created: first.created, choices, usage };
}

// Tool-call deltas: the first delta of a call carries index, id, type "function",
// function.name and arguments ""; later ones only index and an arguments fragment.
function addToolDeltas(state, deltas, where) {
  assert.ok(Array.isArray(deltas), where);
  for (const d of deltas) {
    assert.ok(Number.isInteger(d.index), `tool delta without index (${where})`);
    const call = state.tool_calls[d.index];
    if (!call) {
      assert.equal(d.index, state.tool_calls.length, `tool call indexes skip (${where})`);
      assert.equal(typeof d.id, 'string', `first tool delta lacks id (${where})`);
      assert.ok(d.id.length > 0, where);
      assert.equal(d.type, 'function', where);
      assert.equal(typeof d.function?.name, 'string', `first tool delta lacks name (${where})`);
      assert.equal(d.function.arguments, '', `first tool delta arguments must be "" (${where})`);
      state.tool_calls.push({ id: d.id, type: 'function', function: { name: d.function.name, arguments: '' } });
    } else {
      assert.ok(d.id === undefined, `tool delta repeats id (${where})`);
      assert.ok(d.type === undefined, `tool delta repeats type (${where})`);
      assert.ok(d.function?.name === undefined, `tool delta repeats name (${where})`);
      assert.equal(typeof d.function?.arguments, 'string', `tool delta without arguments (${where})`);
      call.function.arguments += d.function.arguments;
    }
  }
}

// The bounded schema of the json_schema test, and its hand-written validator.
export const PROFILE_SCHEMA = {
  type: 'object',
  properties: {
    color: { type: 'string', enum: ['red', 'green', 'blue'] },
    active: { type: 'boolean' },
    count: { type: 'integer', minimum: 1, maximum: 20 },
    name: { type: 'string', maxLength: 10 },
  },
  required: ['color', 'active', 'count', 'name'],
  additionalProperties: false,
};

export function checkProfile(value, text) {
  const where = `output ${JSON.stringify(text)}`;
  assert.equal(typeof value, 'object', where);
  assert.ok(value !== null && !Array.isArray(value), where);
  assert.deepEqual(Object.keys(value).sort(), ['active', 'color', 'count', 'name'], where);
  assert.ok(['red', 'green', 'blue'].includes(value.color), where);
  assert.equal(typeof value.active, 'boolean', where);
  assert.ok(Number.isInteger(value.count) && value.count >= 1 && value.count <= 20, where);
  assert.equal(typeof value.name, 'string', where);
  assert.ok([...value.name].length <= 10, where);
}

export const WEATHER_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather at a place',
    parameters: {
      type: 'object',
      properties: {
        location: { type: 'string', maxLength: 12 },
        unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
      },
      required: ['location', 'unit'],
      additionalProperties: false,
    },
    strict: true,
  },
};

export const TIME_TOOL = {
  type: 'function',
  function: {
    name: 'get_time',
    description: 'Current time in a time zone',
    parameters: {
      type: 'object',
      properties: { zone: { type: 'string', enum: ['UTC', 'CET', 'PST'] } },
      required: ['zone'],
      additionalProperties: false,
    },
  },
};

// Checks a tool call's name and that its arguments parse and match the tool's schema.
export function checkToolCall(call, allowed = ['get_weather']) {
  const where = `tool call ${JSON.stringify(call)}`;
  assert.equal(call.type, 'function', where);
  assert.equal(typeof call.id, 'string', where);
  assert.ok(call.id.length > 0, where);
  assert.ok(allowed.includes(call.function.name), where);
  assert.equal(typeof call.function.arguments, 'string', where);
  let args;
  try {
    args = JSON.parse(call.function.arguments);
  } catch (e) {
    assert.fail(`arguments do not parse (${e.message}): ${where}`);
  }
  assert.ok(args !== null && typeof args === 'object' && !Array.isArray(args), where);
  if (call.function.name === 'get_weather') {
    assert.deepEqual(Object.keys(args).sort(), ['location', 'unit'], where);
    assert.equal(typeof args.location, 'string', where);
    assert.ok([...args.location].length <= 12, where);
    assert.ok(['celsius', 'fahrenheit'].includes(args.unit), where);
  } else {
    assert.deepEqual(Object.keys(args), ['zone'], where);
    assert.ok(['UTC', 'CET', 'PST'].includes(args.zone), where);
  }
  return args;
}

// True when `text` is a prefix of some JSON text whose value is an object (what a
// json_object response cut off by max_tokens must be). Recursive descent that treats the
// end of input as "could still continue" and any wrong character as invalid.
export function isJsonObjectPrefix(text) {
  const END = Symbol('end');
  let i = 0;
  const peek = () => {
    if (i >= text.length) throw END;
    return text[i];
  };
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i])) i += 1;
  };
  const expect = (chars) => {
    for (const ch of chars) {
      if (peek() !== ch) throw new Error(`expected ${ch} at ${i}`);
      i += 1;
    }
  };
  const string = () => {
    expect('"');
    for (;;) {
      const ch = peek();
      i += 1;
      if (ch === '"') return;
      if (ch < ' ') throw new Error(`control character in a string at ${i}`);
      if (ch === '\\') {
        const e = peek();
        i += 1;
        if (e === 'u') {
          for (let k = 0; k < 4; ++k) {
            if (!/[0-9a-fA-F]/.test(peek())) throw new Error(`bad \\u escape at ${i}`);
            i += 1;
          }
        } else if (!'"\\/bfnrt'.includes(e)) {
          throw new Error(`bad escape at ${i}`);
        }
      }
    }
  };
  const number = () => {
    const m = /^-?(0|[1-9]\d*)?(\.\d*)?([eE][+-]?\d*)?/.exec(text.slice(i));
    if (!m || m[0] === '') throw new Error(`bad number at ${i}`);
    // Accept only what is a prefix of a valid number: "-", "1.", "1e", "1e+" may continue.
    const s = m[0];
    const complete = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/.test(s);
    i += s.length;
    if (i < text.length) {
      if (!complete) throw new Error(`bad number at ${i}`);
      return;
    }
    if (/^-?$|^-?(0|[1-9]\d*)(\.\d*)?$|^-?(0|[1-9]\d*)(\.\d+)?[eE][+-]?\d*$/.test(s)) throw END;
    throw new Error(`bad number at ${i}`);
  };
  const value = () => {
    const ch = peek();
    if (ch === '{') return object();
    if (ch === '[') {
      i += 1;
      ws();
      if (peek() === ']') {
        i += 1;
        return;
      }
      for (;;) {
        value();
        ws();
        if (peek() === ']') {
          i += 1;
          return;
        }
        expect(',');
        ws();
      }
    }
    if (ch === '"') return string();
    if (ch === 't') return expect('true');
    if (ch === 'f') return expect('false');
    if (ch === 'n') return expect('null');
    return number();
  };
  const object = () => {
    expect('{');
    ws();
    if (peek() === '}') {
      i += 1;
      return;
    }
    for (;;) {
      string();
      ws();
      expect(':');
      ws();
      value();
      ws();
      if (peek() === '}') {
        i += 1;
        return;
      }
      expect(',');
      ws();
    }
  };
  try {
    ws();
    object();
    ws();
    return i === text.length;
  } catch (e) {
    if (e === END) return true;
    return false;
  }
}
