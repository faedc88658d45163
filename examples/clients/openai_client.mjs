// Banyan through the official `openai` npm package: the model list, a completion, a
// chat, and both streamed, on the base model and on an adapter (the `model` field
// names the adapter).
//   cd examples/clients && npm install
//   node openai_client.mjs [BASE_URL]        (default http://127.0.0.1:8000)
// With server.api_key set, export BANYAN_API_KEY. Exits non-zero on any failure or
// empty answer.
import OpenAI from "openai";

const base = process.argv[2] ?? "http://127.0.0.1:8000";
const client = new OpenAI({
  baseURL: `${base}/v1`,
  apiKey: process.env.BANYAN_API_KEY ?? "not-needed",
});

function nonEmpty(what, text) {
  if (!text || !text.trim()) throw new Error(`${what}: empty answer`);
  console.log(`${what}: ${JSON.stringify(text)}`);
}

// 1. Models: the base model first, then every adapter (parent = the base model).
const models = [];
for await (const m of client.models.list()) models.push(m);
console.log("models:", models.map((m) => (m.parent ? `${m.id} (adapter of ${m.parent})` : m.id)).join(", "));
const baseModel = models[0].id;
const adapter = models.find((m) => m.parent)?.id ?? baseModel;

// 2. A completion, greedy.
const completion = await client.completions.create({
  model: baseModel, prompt: "The meaning of life is", max_tokens: 24, temperature: 0,
});
nonEmpty(`completion (${baseModel})`, completion.choices[0].text);
console.log(`  finish_reason ${completion.choices[0].finish_reason}, usage ${JSON.stringify(completion.usage)}`);

// 3. A chat through an adapter, sampled with a seed.
const chat = await client.chat.completions.create({
  model: adapter,
  messages: [{ role: "user", content: "Tell me something about love." }],
  max_tokens: 32, temperature: 0.7, seed: 1,
});
nonEmpty(`chat (${adapter})`, chat.choices[0].message.content);

// 4. A streamed completion: text arrives chunk by chunk; the last chunk carries usage.
const stream = await client.completions.create({
  model: baseModel, prompt: "A fortune:", max_tokens: 24, temperature: 0,
  stream: true, stream_options: { include_usage: true },
});
let streamed = "", chunks = 0, usage = null;
for await (const chunk of stream) {
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) { streamed += c.text; chunks++; }
}
nonEmpty(`streamed completion, ${chunks} chunks`, streamed);
console.log(`  usage ${JSON.stringify(usage)}`);

// 5. A streamed chat through the adapter.
const chatStream = await client.chat.completions.create({
  model: adapter,
  messages: [{ role: "user", content: "Tell me something about computers." }],
  max_tokens: 32, temperature: 0, stream: true,
});
let reply = "";
for await (const chunk of chatStream) reply += chunk.choices[0]?.delta?.content ?? "";
nonEmpty(`streamed chat (${adapter})`, reply);
