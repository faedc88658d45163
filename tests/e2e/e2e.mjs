// The official clients against the real server: the openai package (completions,
// chat, streaming, models), @huggingface/inference v4 (over the OpenAI routes) and
// v2 (over TGI's POST /), raw TGI and vLLM routes, and the adapter routes.
//   node e2e.mjs BASE_URL
import OpenAI from "openai";
import { InferenceClient } from "@huggingface/inference";
import { HfInferenceEndpoint } from "hf-inference-tgi";

const BASE = process.argv[2];
const client = new OpenAI({ baseURL: `${BASE}/v1`, apiKey: "unused", maxRetries: 0 });
let failures = 0;

async function check(name, fn) {
  try {
    await fn();
    console.log(`ok   ${name}`);
  } catch (e) {
    failures++;
    console.log(`FAIL ${name}: ${e?.stack ?? e}`);
  }
}
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}
function eq(a, b, msg) {
  const ja = JSON.stringify(a), jb = JSON.stringify(b);
  if (ja !== jb) throw new Error(`${msg}: ${ja} != ${jb}`);
}
async function post(path, body) {
  const r = await fetch(`${BASE}${path}`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* plain text */ }
  return { status: r.status, json, text };
}
const greedy = { temperature: 0, max_tokens: 12, ignore_eos: true };

await check("openai: models.list", async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m);
  assert(ids[0].id === "demo" && ids[0].parent === null, "base model first, without parent");
  for (const a of ids.slice(1)) eq(a.parent, "demo", `adapter ${a.id} parent`);
});

let reference;
await check("openai: completions, whole and streamed, agree", async () => {
  const whole = await client.completions.create({ model: "demo", prompt: "A fortune:", ...greedy, return_token_ids: true });
  const c = whole.choices[0];
  eq(c.finish_reason, "length", "finish_reason");
  eq(c.token_ids.length, 12, "token count");
  eq(whole.usage.completion_tokens, 12, "usage");
  const stream = await client.completions.create({
    model: "demo", prompt: "A fortune:", ...greedy, stream: true, stream_options: { include_usage: true },
  });
  let text = "", usage = null, finish = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const ch of chunk.choices) {
      text += ch.text;
      if (ch.finish_reason) finish = ch.finish_reason;
    }
  }
  eq(text, c.text, "streamed text equals the whole text");
  eq(finish, "length", "streamed finish_reason");
  eq(usage?.completion_tokens, 12, "streamed usage");
  reference = c.text;
});

await check("openai: completions n=2, list of prompts, token-id prompts, logprobs", async () => {
  const r = await client.completions.create({ prompt: ["One", "Two"], n: 2, max_tokens: 3, seed: 1, logprobs: 2 });
  eq(r.choices.map((c) => c.index), [0, 1, 2, 3], "choice indexes");
  const lp = r.choices[0].logprobs;
  eq(lp.tokens.length, lp.token_logprobs.length, "logprobs lengths");
  assert(Object.keys(lp.top_logprobs[0]).length >= 1, "top_logprobs");
  const tok = await post("/tokenize", { prompt: "A fortune:" });
  const ids = await client.completions.create({ prompt: tok.json.tokens, ...greedy });
  eq(ids.choices[0].text, reference, "token-id prompt gives the same text");
});

await check("openai: chat, whole and streamed, agree", async () => {
  const messages = [{ role: "user", content: "Tell me something about love." }];
  const whole = await client.chat.completions.create({ model: "demo", messages, ...greedy });
  const m = whole.choices[0].message;
  eq(m.role, "assistant", "role");
  const stream = await client.chat.completions.create({ model: "demo", messages, ...greedy, stream: true });
  let text = "";
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
  eq(text, m.content, "streamed chat text");
  const lp = await client.chat.completions.create({ messages, max_tokens: 3, logprobs: true, top_logprobs: 2 });
  eq(lp.choices[0].logprobs.content.length, 3, "chat logprobs per token");
  assert(Array.isArray(lp.choices[0].logprobs.content[0].bytes), "bytes");
});

await check("openai: errors are typed", async () => {
  try {
    await client.completions.create({ model: "nope", prompt: "x" });
    throw new Error("no error");
  } catch (e) {
    eq(e.status, 404, "status");
    eq(e.code, "model_not_found", "code");
  }
  try {
    await client.completions.create({ prompt: "x", max_tokens: 0 });
    throw new Error("no error");
  } catch (e) {
    eq(e.status, 400, "status");
    eq(e.param, "max_tokens", "param");
  }
});

await check("@huggingface/inference v4: textGeneration and chatCompletion", async () => {
  const hf = new InferenceClient(undefined, { endpointUrl: BASE });
  const out = await hf.textGeneration({ inputs: "A fortune:", parameters: { max_new_tokens: 12, temperature: 0, ignore_eos: true } });
  eq(out.generated_text, reference, "textGeneration text");
  const chat = await hf.chatCompletion({ messages: [{ role: "user", content: "Hi" }], max_tokens: 4 });
  assert(typeof chat.choices[0].message.content === "string", "chat content");
});

await check("@huggingface/inference v2 (TGI client): textGeneration and stream", async () => {
  const tgi = new HfInferenceEndpoint(BASE);
  // v2 asks the Hub for a default model unless one is named; TGI ignores the name.
  const out = await tgi.textGeneration({ model: "tgi", inputs: "A fortune:", parameters: { max_new_tokens: 12, details: true } });
  assert(typeof out.generated_text === "string", "generated_text");
  let text = "", last = null, tokens = 0;
  for await (const ev of tgi.textGenerationStream({ model: "tgi", inputs: "A fortune:", parameters: { max_new_tokens: 12, details: true } })) {
    tokens++;
    last = ev;
    if (!ev.generated_text) text += ev.token.text;
  }
  eq(tokens, last.details.generated_tokens, "one event per token");
  eq(last.generated_text, out.generated_text, "stream and whole agree");
});

await check("TGI raw: /generate with details, /generate_stream, /info", async () => {
  const r = await post("/generate", { inputs: "A fortune:", parameters: { max_new_tokens: 12, details: true, top_n_tokens: 2 } });
  eq(r.status, 200, "status");
  eq(r.json.details.generated_tokens, r.json.details.tokens.length, "tokens");
  eq(r.json.details.top_tokens[0].length, 2, "top_n_tokens");
  const info = await (await fetch(`${BASE}/info`)).json();
  eq(info.model_id, "demo", "info model_id");
  const bad = await post("/generate", { inputs: "x", parameters: { temperature: 0 } });
  eq(bad.status, 422, "validation status");
  assert(typeof bad.json.error === "string" && bad.json.error_type === "validation", "TGI error shape");
});

await check("vLLM raw: /generate whole and NUL-delimited stream", async () => {
  const r = await post("/generate", { prompt: "A fortune:", ...greedy });
  eq(r.json.text, ["A fortune:" + reference], "prompt + output");
  const s = await fetch(`${BASE}/generate`, { method: "POST", body: JSON.stringify({ prompt: "A fortune:", ...greedy, stream: true }) });
  const chunks = (await s.text()).split("\0").filter((x) => x.length);
  eq(JSON.parse(chunks.at(-1)).text, ["A fortune:" + reference], "last stream chunk");
});

// Adapters (issue 8's HTTP parts): model = adapter name, runtime load/unload, TGI's
// adapter_id, LoRAX's local source, confinement to adapters.allowed_roots.
const models = [];
for await (const m of client.models.list()) models.push(m.id);
if (models.includes("python")) {
  const prompt = "def ";
  const run = async (model) => (await client.completions.create({ model, prompt, ...greedy })).choices[0].text;
  await check("adapters: model=adapter changes the output", async () => {
    const base = await run("demo"), py = await run("python");
    assert(base !== py, "the python adapter should change the greedy text");
  });
  await check("adapters: load, serve, unload, 404 after", async () => {
    const load = await post("/v1/load_lora_adapter", { lora_name: "py2", lora_path: "models/demo/adapters/python" });
    eq(load.status, 200, `load: ${load.text}`);
    eq(await run("py2"), await run("python"), "same weights, same text");
    const listed = [];
    for await (const m of client.models.list()) listed.push(m);
    eq(listed.find((m) => m.id === "py2")?.parent, "demo", "listed with parent");
    eq((await post("/v1/load_lora_adapter", { lora_name: "py2", lora_path: "models/demo/adapters/python" })).status, 400, "duplicate");
    eq((await post("/v1/unload_lora_adapter", { lora_name: "py2" })).status, 200, "unload");
    const again = await post("/v1/unload_lora_adapter", { lora_name: "py2" });
    eq(again.status, 404, "unload again");
    eq(again.json.error.code, "adapter_not_found", "error code");
    eq((await post("/v1/completions", { model: "py2", prompt })).status, 404, "unloaded model");
  });
  await check("adapters: paths confined to allowed roots", async () => {
    eq((await post("/v1/load_lora_adapter", { lora_name: "x", lora_path: "/etc" })).status, 403, "absolute outside");
    eq((await post("/v1/load_lora_adapter", { lora_name: "x", lora_path: "models/demo/adapters/../../demo" })).status, 403, "dot-dot");
    eq((await post("/v1/load_lora_adapter", { lora_name: "x", lora_path: "models/demo/adapters/none" })).status, 404, "missing");
  });
  await check("adapters: TGI adapter_id and LoRAX local source", async () => {
    const want = await run("love");
    const tgi = await post("/generate", { inputs: prompt, parameters: { max_new_tokens: 12, adapter_id: "love" } });
    const tgiBase = await post("/generate", { inputs: prompt, parameters: { max_new_tokens: 12 } });
    assert(tgi.json.generated_text !== tgiBase.json.generated_text || want === await run("demo"), "adapter_id applied");
    const lorax = await post("/generate", {
      inputs: prompt, parameters: { max_new_tokens: 12, adapter_id: "models/demo/adapters/love", adapter_source: "local" },
    });
    eq(lorax.status, 200, `lorax: ${lorax.text}`);
    eq(lorax.json.generated_text, tgi.json.generated_text, "same adapter by path and by name");
    eq((await post("/generate", { inputs: prompt, parameters: { adapter_id: "/etc", adapter_source: "local" } })).status, 403, "lorax outside");
    eq((await post("/generate", { inputs: prompt, parameters: { adapter_id: "nope" } })).status, 404, "unknown adapter_id");
  });
  await check("adapters: per-adapter metrics", async () => {
    const m = await (await fetch(`${BASE}/metrics`)).text();
    assert(/banyan_adapter_requests_total\{adapter="python"\} [1-9]/.test(m), "requests of python counted");
  });
} else {
  console.log("FAIL adapters: the demo deployment lists no adapters (configs/demo.yaml preloads three)");
  failures++;
}

console.log(failures ? `${failures} e2e check(s) failed` : "all e2e checks passed");
process.exit(failures ? 1 : 0);
