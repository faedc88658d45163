#!/usr/bin/env python3
"""Trains the demo model in models/demo/ (run on the GPU machine; a few minutes on one H100).

Stages (all by default, each reloads what earlier stages saved):
  tokenizer  byte-level BPE (HF tokenizers) on the corpus -> tokenizer.json, tokenizer_config.json
  base       LlamaForCausalLM (~8.6M parameters) on all fortunes (+ chat-wrapped fortunes, + a little
             Python) -> model.safetensors (bf16), config.json, generation_config.json
  adapters   three LoRA adapters (peft) fine-tuned from the base on different slices -> adapters/<name>/
  samples    held-out perplexity and greedy generations from the saved files; writes README.md

Text: fortunes (Debian package `fortunes`) and the Python 3.11 standard library source, copied into
.cache/corpus by scripts/gather-corpus.sh. Every 50th fortune and every 10th Python file is held out.

Usage: python3 tools/train_demo.py --corpus .cache/corpus --out models/demo [--stages base,samples]
       [--base-steps 900] [--adapter-steps 400]
"""
import argparse
import json
import math
import random
import shutil
import time
import traceback
from pathlib import Path

import torch
import torch.nn.functional as F

SPECIALS = ["<|pad|>", "<|bos|>", "<|eos|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
PAD, BOS, EOS, SYSTEM, USER, ASSISTANT, END = range(len(SPECIALS))
SEQ_LEN = 256
MAX_POSITIONS = 512
CHAT_TEMPLATE = ("{{ bos_token }}{% for message in messages %}"
                 "{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}"
                 "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}")
GENERIC_QUESTIONS = ["Tell me a fortune.", "Say something clever.", "Give me a quote.", "Share some wisdom.",
                     "Tell me something."]
TOPIC_NAMES = {"men-women": "men and women", "songs-poems": "songs and poems", "startrek": "Star Trek",
               "linux": "Linux", "linuxcookie": "Linux", "debian": "Debian", "perl": "Perl", "zippy": "Zippy",
               "tao": "the Tao", "pratchett": "Pratchett", "goedel": "logic", "paradoxum": "paradoxes",
               "ascii-art": "art", "definitions": "words", "law": "the law", "knghtbrd": "IRC"}
GENERIC_FILES = {"fortunes", "cookie", "miscellaneous", "disclaimer", "translate-me"}
ADAPTERS = {  # name -> (slice, LoRA rank)
    "python": ("python", 16),
    "computers": (["computers", "linux", "linuxcookie", "science", "debian"], 16),
    "love": (["love", "men-women", "literature", "people"], 8),
}
SAMPLE_PROMPTS = ["The meaning of life is", "A computer is", "Love is", "def main():\n    ", "Q: Why"]
CHAT_SAMPLES = ["Tell me something about love.", "Tell me something about computers.", "Tell me a fortune."]


def log(*a):
    print(*a, flush=True)


def chat_text(question, answer=None):
    """The exact text CHAT_TEMPLATE renders (after bos_token) for one user turn and an assistant turn."""
    s = f"<|user|>\n{question}<|end|>\n<|assistant|>\n"
    return s if answer is None else s + f"{answer}<|end|>\n"


class Corpus:
    def __init__(self, root):
        root = Path(root)
        self.files = {}
        for p in sorted((root / "fortunes").glob("*.txt")):
            self.files[p.stem] = [e.strip("\n") for e in p.read_text(encoding="utf-8").split("\n%\n") if e.strip()]
        py = [p.read_text(encoding="utf-8") for p in sorted((root / "python").glob("*.py"))]
        if not self.files or not py:
            raise SystemExit(f"empty corpus under {root}: run scripts/gather-corpus.sh")
        self.train, self.heldout, i = {}, {}, 0
        for name, entries in self.files.items():
            self.train[name], self.heldout[name] = [], []
            for e in entries:
                (self.heldout if i % 50 == 0 else self.train)[name].append(e)
                i += 1
        self.py_train = [t for j, t in enumerate(py) if j % 10 != 0]
        self.py_heldout = [t for j, t in enumerate(py) if j % 10 == 0]
        log(f"corpus: {sum(map(len, self.train.values()))} train / {sum(map(len, self.heldout.values()))} "
            f"held-out fortunes; {len(self.py_train)} / {len(self.py_heldout)} python files")

    def entries(self, split, names=None):
        src = self.train if split == "train" else self.heldout
        return [(n, e) for n in (names or sorted(src)) for e in src[n]]

    def chat_docs(self, names=None, seed=0):
        rng = random.Random(seed)
        docs = []
        for name, e in self.entries("train", names):
            if name in GENERIC_FILES or rng.random() < 0.4:
                q = rng.choice(GENERIC_QUESTIONS)
            else:
                q = f"Tell me something about {TOPIC_NAMES.get(name, name.replace('-', ' '))}."
            docs.append(chat_text(q, e))
        return docs


def train_tokenizer(corpus, out, vocab_size):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    texts = [e for _, e in corpus.entries("train")] + corpus.py_train + GENERIC_QUESTIONS
    tok.train_from_iterator(texts, trainer=trainer)
    for i, s in enumerate(SPECIALS):
        assert tok.token_to_id(s) == i, (s, tok.token_to_id(s))
    tok.post_processor = processors.TemplateProcessing(
        single="<|bos|> $A", pair="<|bos|> $A <|bos|> $B", special_tokens=[("<|bos|>", BOS)])
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|bos|>", "eos_token": "<|eos|>", "pad_token": "<|pad|>",
        "add_bos_token": True, "add_eos_token": False,
        "model_max_length": MAX_POSITIONS, "clean_up_tokenization_spaces": False,
        "chat_template": CHAT_TEMPLATE,
    }, indent=2) + "\n")
    log(f"tokenizer: {tok.get_vocab_size()} tokens; 'Hello, world!' -> "
        f"{tok.encode('Hello, world!').tokens}")
    return tok


def load_tokenizer(out):
    from tokenizers import Tokenizer
    return Tokenizer.from_file(str(out / "tokenizer.json"))


def stream(tok, docs, device):
    ids = []
    for e in tok.encode_batch(docs, add_special_tokens=False):
        ids.append(BOS)
        ids += e.ids
        ids.append(EOS)
    return torch.tensor(ids, dtype=torch.long, device=device)


def windows(s, n, rows, gen, ar):
    off = torch.randint(0, s.numel() - n - 1, (rows,), generator=gen).to(s.device)
    return s[off[:, None] + ar[None, :]]


@torch.no_grad()
def mean_nll(model, s, max_windows=None, autocast=True):
    """Mean next-token NLL over consecutive SEQ_LEN windows of the id stream `s`."""
    model.eval()
    n = (s.numel() - 1) // SEQ_LEN
    if max_windows:
        n = min(n, max_windows)
    tot, cnt = 0.0, 0
    for i in range(0, n, 16):
        x = torch.stack([s[j * SEQ_LEN: j * SEQ_LEN + SEQ_LEN + 1] for j in range(i, min(n, i + 16))])
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            logits = model(input_ids=x[:, :-1], use_cache=False).logits
        tot += F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1),
                               reduction="sum").item()
        cnt += x[:, 1:].numel()
    return tot / max(cnt, 1)


def run_training(model, mix, seconds, lr, max_steps, eval_stream=None, tag="", eval_every=100):
    """mix: list of (stream, rows per batch). Cosine schedule over the time budget (or max_steps)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [g for g in ({"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0})
              if g["params"]]
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), fused=torch.cuda.is_available())
    gen = torch.Generator(device="cpu").manual_seed(1)
    ar = torch.arange(SEQ_LEN + 1, device=mix[0][0].device)
    best = (float("inf"), None, 0)
    t0, step = time.time(), 0
    warm = min(100, max_steps // 10) if max_steps else 100
    loss = torch.tensor(float("nan"))
    model.train()
    while True:
        progress = step / max_steps if max_steps else (time.time() - t0) / seconds
        if progress >= 1.0:
            break
        f = min(1.0, (step + 1) / warm) * (0.1 + 0.45 * (1 + math.cos(math.pi * progress)))
        for g in opt.param_groups:
            g["lr"] = lr * f
        x = torch.cat([windows(s, SEQ_LEN, rows, gen, ar) for s, rows in mix])
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(input_ids=x[:, :-1], use_cache=False).logits
        loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        if step % eval_every == 0:
            msg = f"{tag} step {step} loss {loss.item():.3f} lr {lr * f:.2e} {time.time() - t0:.0f}s"
            if eval_stream is not None:
                v = mean_nll(model, eval_stream)
                model.train()
                msg += f" held-out {v:.3f} (ppl {math.exp(v):.1f})"
                if v < best[0]:
                    best = (v, {k: t.detach().float().cpu().clone() for k, t in model.state_dict().items()}, step)
            log(msg)
    if eval_stream is not None:
        v = mean_nll(model, eval_stream)
        if v < best[0]:
            best = (v, None, step)
        elif best[1] is not None:
            model.load_state_dict(best[1])
        log(f"{tag}: {step} steps in {time.time() - t0:.0f}s; kept step {best[2]} (held-out nll {best[0]:.3f})")
    model.eval()
    return {"steps": step, "seconds": round(time.time() - t0, 1), "final_train_loss": round(loss.item(), 4),
            "kept_step": best[2] if eval_stream is not None else step}


def stage_base(corpus, tok, out, args, dev):
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=256, intermediate_size=704, num_hidden_layers=6,
                      num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=MAX_POSITIONS,
                      rms_norm_eps=1e-5, tie_word_embeddings=False,
                      rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                      bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD)
    model = LlamaForCausalLM(cfg).to(dev)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"base: {n_params / 1e6:.2f}M parameters")
    assert n_params < 11e6
    plain = stream(tok, [e for _, e in corpus.entries("train")], dev)
    chat = stream(tok, corpus.chat_docs(), dev)
    py = stream(tok, corpus.py_train, dev)
    held = stream(tok, [e for _, e in corpus.entries("heldout")], dev)
    log(f"tokens: fortunes {plain.numel()}, chat {chat.numel()}, python {py.numel()}, held-out {held.numel()}")
    stats = run_training(model, [(plain, 46), (chat, 12), (py, 6)], args.base_seconds, args.base_lr,
                         args.base_steps, eval_stream=held, tag="base")
    stats.update(parameters=n_params, batch="64 x 256 tokens (46 fortunes, 12 chat-wrapped fortunes, 6 python)",
                 tokens={"fortunes": plain.numel(), "chat": chat.numel(), "python": py.numel()})
    model = model.to(torch.bfloat16)
    model.generation_config = GenerationConfig(bos_token_id=BOS, eos_token_id=[EOS, END], pad_token_id=PAD)
    model.save_pretrained(str(out))
    if not (out / "generation_config.json").exists():
        model.generation_config.save_pretrained(str(out))
    return stats


def slice_streams(corpus, tok, spec, dev, seed):
    if spec == "python":
        return [(stream(tok, corpus.py_train, dev), 32)], stream(tok, corpus.py_heldout, dev)
    plain = stream(tok, [e for _, e in corpus.entries("train", spec)], dev)
    chat = stream(tok, corpus.chat_docs(spec, seed=seed), dev)
    held = stream(tok, [e for _, e in corpus.entries("heldout", spec)], dev)
    return [(plain, 24), (chat, 8)], held


def load_base(out, dev):
    from transformers import AutoModelForCausalLM
    return AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).to(dev).eval()


def stage_adapters(corpus, tok, out, args, dev):
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file, save_file
    stats = {}
    for i, (name, (spec, rank)) in enumerate(ADAPTERS.items()):
        torch.manual_seed(10 + i)
        mix, _ = slice_streams(corpus, tok, spec, dev, seed=10 + i)
        model = get_peft_model(load_base(out, dev), LoraConfig(
            r=rank, lora_alpha=2 * rank, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM",
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
        s = run_training(model, mix, args.adapter_seconds, args.adapter_lr, args.adapter_steps, tag=f"adapter {name}")
        adir = out / "adapters" / name
        if adir.exists():
            shutil.rmtree(adir)
        model.save_pretrained(str(adir))
        (adir / "README.md").unlink(missing_ok=True)
        cfg_path = adir / "adapter_config.json"
        acfg = json.loads(cfg_path.read_text())
        acfg["base_model_name_or_path"] = "models/demo"
        if isinstance(acfg.get("target_modules"), list):  # peft saves a set: fix the order
            acfg["target_modules"] = sorted(acfg["target_modules"])
        cfg_path.write_text(json.dumps(acfg, indent=2, sort_keys=True) + "\n")
        path = adir / "adapter_model.safetensors"
        save_file({k: v.to(torch.bfloat16).contiguous() for k, v in load_file(str(path)).items()}, str(path),
                  metadata={"format": "pt"})
        s.update(rank=rank, alpha=2 * rank, data=spec if spec == "python" else "fortunes: " + ", ".join(spec))
        stats[name] = s
        del model
    return stats


@torch.no_grad()
def generate(model, ids, dev, n=40, sample=False):
    x = torch.tensor([ids], dtype=torch.long, device=dev)
    kw = dict(do_sample=True, temperature=0.8, top_p=0.95) if sample else dict(do_sample=False)
    if sample:
        torch.manual_seed(0)
    out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=n,
                         eos_token_id=[EOS, END], pad_token_id=PAD, **kw)
    seq = out.sequences if hasattr(out, "sequences") else out
    return seq[0, x.shape[1]:].tolist()


def check_hf_tokenizer(out, tok):
    """The files must behave the same through transformers as through tokenizers (BOS once, chat text)."""
    try:
        from transformers import AutoTokenizer
        hf = AutoTokenizer.from_pretrained(str(out))
        text = "Hello there, general Kenobi."
        ids = hf(text)["input_ids"]
        want = [BOS] + tok.encode(text, add_special_tokens=False).ids
        log(f"hf tokenizer {type(hf).__name__}: ids {'match' if ids == want else 'DIFFER'} ({ids[:6]}...)")
        msgs = [{"role": "user", "content": "Tell me a fortune."}]
        rendered = hf.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        expect = "<|bos|>" + chat_text("Tell me a fortune.")
        log(f"chat template render {'matches' if rendered == expect else 'DIFFERS'}: {rendered!r}")
    except Exception:
        log(f"hf tokenizer check failed:\n{traceback.format_exc()}")


def stage_samples(corpus, tok, out, dev):
    from peft import PeftModel

    def show(ids):
        return tok.decode(ids, skip_special_tokens=True)

    check_hf_tokenizer(out, tok)
    held = stream(tok, [e for _, e in corpus.entries("heldout")], dev)
    res = {"models": {}}
    names = [None] + [n for n in ADAPTERS if (out / "adapters" / n / "adapter_config.json").exists()]
    for name in names:
        model = load_base(out, dev)
        label = "base"
        if name:
            model = PeftModel.from_pretrained(model, str(out / "adapters" / name)).eval()
            label = f"adapter {name}"
        r = {"heldout_fortunes_ppl": round(math.exp(mean_nll(model, held, autocast=False)), 2), "greedy": {},
             "chat": {}}
        if name:
            _, dom = slice_streams(corpus, tok, ADAPTERS[name][0], dev, seed=0)
            r["domain_ppl"] = round(math.exp(mean_nll(model, dom, autocast=False)), 2)
            base_model = load_base(out, dev)
            r["domain_ppl_base"] = round(math.exp(mean_nll(base_model, dom, autocast=False)), 2)
            del base_model
        log(f"== {label}: held-out fortunes ppl {r['heldout_fortunes_ppl']}"
            + (f"; its own slice ppl {r['domain_ppl']} (base {r['domain_ppl_base']})" if name else ""))
        for p in SAMPLE_PROMPTS:
            ids = [BOS] + tok.encode(p, add_special_tokens=False).ids
            g = show(generate(model, ids, dev))
            r["greedy"][p] = g
            log(f"[{label}] greedy  {p!r} -> {g!r}")
            if name is None:
                log(f"[{label}] sampled {p!r} -> {show(generate(model, ids, dev, sample=True))!r}")
        for q in CHAT_SAMPLES:
            ids = [BOS] + tok.encode(chat_text(q), add_special_tokens=False).ids
            g = show(generate(model, ids, dev, n=60))
            r["chat"][q] = g
            log(f"[{label}] chat    {q!r} -> {g!r}")
        res["models"][label] = r
        del model
    return res


def write_readme(out, stats):
    def mb(p):
        return p.stat().st_size / 1e6
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "README.md")
    total = sum(mb(p) for p in files)
    base, samples = stats.get("base", {}), stats.get("samples", {}).get("models", {})
    lines = [
        "# Demo model", "",
        "A small Llama-architecture model with its own byte-level BPE tokenizer and three LoRA adapters, made by",
        "`tools/train_demo.py` so that Banyan's first commands print readable text. It knows fortune cookies and",
        "a little Python; do not expect facts.", "",
        "## Data", "",
        "- `fortunes` (Debian package `fortunes`, /usr/share/games/fortunes): every entry, overstrike removed;",
        "  every 50th entry held out. A share of entries is also wrapped in the chat template",
        "  (`Tell me something about <topic>.` -> the fortune) so chat requests answer with a fortune.",
        "- Python 3.11 standard library source (Debian `libpython3.11-stdlib`/`-minimal`, files <= 32 kB);",
        "  every 10th file held out.",
        "- Copied by `scripts/gather-corpus.sh` into `.cache/corpus/`.", "",
        "## Model", "",
        f"- LlamaForCausalLM: hidden 256, 6 layers, 8 heads / 4 KV heads (head_dim 32), MLP 704, RMSNorm 1e-5,",
        f"  RoPE theta 10000, max positions {MAX_POSITIONS}, untied embeddings, vocab {stats.get('vocab_size')}.",
        f"- Parameters: {base.get('parameters', 0) / 1e6:.2f}M, stored in bf16 (model.safetensors).",
        f"- Training: {base.get('steps')} steps in {base.get('seconds')} s on one H100, batch "
        f"{base.get('batch')}, AdamW (0.9, 0.95, wd 0.1), peak lr {stats.get('base_lr')}, cosine to 10%, bf16 "
        f"autocast; the step with the lowest held-out loss was kept (step {base.get('kept_step')}).",
        f"- Held-out fortunes perplexity (float32 over the bf16 weights, {SEQ_LEN}-token windows): "
        f"{samples.get('base', {}).get('heldout_fortunes_ppl')} per token.",
        "- Tokenizer: byte-level BPE (tokenizer.json), special tokens " + ", ".join(f"`{s}`={i}" for i, s in
                                                                                   enumerate(SPECIALS)) + ";",
        "  BOS is added to every prompt; generation stops at `<|eos|>` or `<|end|>`.",
        "- Chat template: `<|bos|><|user|>\\n{content}<|end|>\\n<|assistant|>\\n` (roles system, user, assistant).",
        "", "## Adapters (PEFT LoRA, all projections, saved in bf16)", "",
        "| name | data | rank / alpha | steps | perplexity on its held-out slice: adapter (base) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, s in stats.get("adapters", {}).items():
        m = samples.get(f"adapter {name}", {})
        lines.append(f"| {name} | {s.get('data')} | {s.get('rank')} / {s.get('alpha')} | {s.get('steps')} | "
                     f"{m.get('domain_ppl')} ({m.get('domain_ppl_base')}) |")
    lines += ["", "The computers and love slices were already part of the base's training data, so those adapters",
              "mostly shift the style (see the samples) rather than lower perplexity; the Python adapter learns",
              "new data.", "", "## Sizes", ""]
    lines += [f"- `{p.relative_to(out)}`: {mb(p):.2f} MB" for p in files]
    lines += [f"- total: {total:.2f} MB", "", "## Greedy samples (40 new tokens, chat 60; from the saved files)", ""]
    for label, r in samples.items():
        lines += [f"{label}:", "", "```"]
        for p, g in r.get("greedy", {}).items():
            lines.append(f"{p!r} -> {g!r}")
        for q, g in r.get("chat", {}).items():
            lines.append(f"chat {q!r} -> {g!r}")
        lines += ["```", ""]
    lines += ["## Reproduce", "", "```", "scripts/gather-corpus.sh", "python3 tools/train_demo.py --corpus .cache/corpus "
              "--out models/demo   # on a CUDA machine", "```",
              "GPU kernels are not bitwise deterministic, so a rerun gives a similar but not identical model.", ""]
    (out / "README.md").write_text("\n".join(lines))
    log(f"demo files total {total:.2f} MB")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=".cache/corpus")
    ap.add_argument("--out", default="models/demo")
    ap.add_argument("--stages", default="tokenizer,base,adapters,samples")
    ap.add_argument("--vocab-size", type=int, default=8192)
    ap.add_argument("--base-seconds", type=float, default=90)
    ap.add_argument("--base-steps", type=int, default=900, help="step count; 0 = use --base-seconds")
    ap.add_argument("--base-lr", type=float, default=2e-3)
    ap.add_argument("--adapter-seconds", type=float, default=15)
    ap.add_argument("--adapter-steps", type=int, default=400, help="step count; 0 = use --adapter-seconds")
    ap.add_argument("--adapter-lr", type=float, default=1e-3)
    args = ap.parse_args()
    import transformers
    import peft
    import tokenizers
    log(f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}, "
        f"tokenizers {tokenizers.__version__}")
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stats_path = out / "train_stats.json"
    stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    stages = args.stages.split(",")
    corpus = Corpus(args.corpus)
    t0 = time.time()
    if "tokenizer" in stages:
        tok = train_tokenizer(corpus, out, args.vocab_size)
    else:
        tok = load_tokenizer(out)
    stats["vocab_size"] = tok.get_vocab_size()
    if "base" in stages:
        stats["base"] = stage_base(corpus, tok, out, args, dev)
        stats["base_lr"] = args.base_lr
        stats_path.write_text(json.dumps(stats, indent=2) + "\n")
    if "adapters" in stages:
        stats["adapters"] = stage_adapters(corpus, tok, out, args, dev)
        stats_path.write_text(json.dumps(stats, indent=2) + "\n")
    if "samples" in stages:
        stats["samples"] = stage_samples(corpus, tok, out, dev)
        stats_path.write_text(json.dumps(stats, indent=2) + "\n")
    write_readme(out, stats)
    log(f"train_demo done in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
