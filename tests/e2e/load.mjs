// Load on loopback against the real engine:
//  1. 1,000 concurrent streams, each checked against its prompt's greedy tokens taken
//     alone beforehand: every stream gets exactly its tokens, none duplicated or lost.
//  2. A storm of clients that disconnect mid-request; afterwards /metrics must show no
//     KV block in use and no request left running or waiting.
//   node load.mjs BASE_URL [STREAMS]
import http from "node:http";

const BASE = new URL(process.argv[2]);
const STREAMS = Number(process.argv[3] ?? 1000);
const MAX_TOKENS = 12;
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
let failures = 0;

function request(path, body, { onData, signal } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: BASE.hostname, port: BASE.port, path, method: "POST", agent, signal,
      headers: { "Content-Type": "application/json" },
    }, (res) => {
      let data = "";
      res.setEncoding("utf8");
      res.on("data", (c) => { data += c; onData?.(c, req); });
      res.on("end", () => resolve({ status: res.statusCode, body: data }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

function parseStream(body) {
  const ids = [];
  let text = "", finish = null, done = 0;
  for (const line of body.split("\n")) {
    if (!line.startsWith("data: ")) continue;
    const data = line.slice(6);
    if (data === "[DONE]") { done++; continue; }
    const c = JSON.parse(data).choices[0];
    if (!c) continue;
    text += c.text;
    ids.push(...(c.token_ids ?? []));
    if (c.finish_reason) finish = c.finish_reason;
  }
  return { ids, text, finish, done };
}

const prompts = Array.from({ length: 25 }, (_, i) => `Fortune number ${i}:`);
const params = { temperature: 0, max_tokens: MAX_TOKENS, ignore_eos: true, return_token_ids: true };

// References, one request at a time.
const refs = [];
for (const p of prompts) {
  const r = await request("/v1/completions", { prompt: p, ...params });
  const c = JSON.parse(r.body).choices[0];
  refs.push({ ids: c.token_ids, text: c.text });
}

const t0 = performance.now();
const results = await Promise.all(Array.from({ length: STREAMS }, async (_, k) => {
  const i = k % prompts.length;
  try {
    const r = await request("/v1/completions", { prompt: prompts[i], ...params, stream: true });
    if (r.status !== 200) return `status ${r.status}: ${r.body.slice(0, 200)}`;
    const s = parseStream(r.body);
    if (s.done !== 1) return `[DONE] seen ${s.done} times`;
    if (s.finish !== "length") return `finish_reason ${s.finish}`;
    if (s.ids.length !== MAX_TOKENS) return `${s.ids.length} tokens, wanted ${MAX_TOKENS}`;
    if (JSON.stringify(s.ids) !== JSON.stringify(refs[i].ids)) return `tokens differ from the reference`;
    if (s.text !== refs[i].text) return `text differs from the reference`;
    return null;
  } catch (e) {
    return `error ${e.message}`;
  }
}));
const secs = (performance.now() - t0) / 1000;
const bad = results.filter((r) => r !== null);
if (bad.length) {
  failures++;
  const kinds = {};
  for (const b of bad) kinds[b] = (kinds[b] ?? 0) + 1;
  console.log(`FAIL load: ${bad.length}/${STREAMS} streams wrong: ${JSON.stringify(kinds).slice(0, 600)}`);
} else {
  console.log(`ok   load: ${STREAMS} concurrent streams, each exactly its ${MAX_TOKENS} tokens (${secs.toFixed(1)} s, ${(STREAMS * MAX_TOKENS / secs).toFixed(0)} tokens/s)`);
}

// Disconnect storm: streams cut after a few chunks, whole requests cut after a while.
const storm = [];
for (let k = 0; k < 300; k++) {
  const ac = new AbortController();
  const cutAfter = 1 + (k % 4);
  let chunks = 0;
  storm.push(request("/v1/completions", { prompt: prompts[k % prompts.length], max_tokens: 400, ignore_eos: true, stream: true },
    { signal: ac.signal, onData: () => { if (++chunks >= cutAfter) ac.abort(); } }).catch(() => null));
}
for (let k = 0; k < 100; k++) {
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 20 + (k % 10) * 30);
  storm.push(request(k % 2 ? "/v1/chat/completions" : "/generate",
    k % 2 ? { messages: [{ role: "user", content: `q${k}` }], max_tokens: 400, ignore_eos: true }
          : { inputs: `q${k}`, parameters: { max_new_tokens: 400 } },
    { signal: ac.signal }).catch(() => null));
}
await Promise.all(storm);

const metric = (text, name) => {
  const m = text.match(new RegExp(`^${name} ([0-9.e+-]+)$`, "m"));
  return m ? Number(m[1]) : NaN;
};
let last = "";
let clean = false;
for (let i = 0; i < 600 && !clean; i++) {
  last = await (await fetch(new URL("/metrics", BASE))).text();
  clean = metric(last, "banyan_kv_cache_usage_ratio") === 0 && metric(last, "banyan_num_requests_running") === 0 &&
          metric(last, "banyan_num_requests_waiting") === 0 && metric(last, "banyan_server_requests_active") === 0;
  if (!clean) await new Promise((r) => setTimeout(r, 100));
}
if (!clean) {
  failures++;
  console.log(`FAIL storm: blocks or requests left: kv_usage ${metric(last, "banyan_kv_cache_usage_ratio")}, running ${metric(last, "banyan_num_requests_running")}, waiting ${metric(last, "banyan_num_requests_waiting")}, active ${metric(last, "banyan_server_requests_active")}`);
} else {
  console.log(`ok   storm: 400 disconnecting clients, no KV block in use afterwards (disconnects counted: ${metric(last, "banyan_client_disconnects_total")})`);
}
agent.destroy();
process.exit(failures ? 1 : 0);
