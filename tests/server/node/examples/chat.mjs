// The README's OpenAI SDK example: a streamed chat completion from `muse serve`.
// Run `make run` in another terminal, then: node tests/server/node/examples/chat.mjs
import OpenAI from 'openai';

const client = new OpenAI({
  baseURL: process.env.OPENAI_BASE_URL ?? 'http://127.0.0.1:8080/v1',
  apiKey: process.env.OPENAI_API_KEY ?? 'no-key-needed',
});
const stream = await client.chat.completions.create({
  model: process.env.MUSE_MODEL ?? 'muse-nano',
  messages: [{ role: 'user', content: 'Who are you?' }],
  max_tokens: 32,
  stream: true,
});
for await (const chunk of stream) process.stdout.write(chunk.choices[0]?.delta?.content ?? '');
process.stdout.write('\n');
