#!/usr/bin/env python3
"""Makes the tiny *trained* parity fixtures under tests/fixtures/models/ (run on the GPU machine).

For each family (llama, llama2, mistral, qwen2, qwen3, gpt2) it trains a 2-layer model for a few
hundred steps on the byte values of the fortunes corpus (so greedy choices are not near-ties),
saves it in bf16 with transformers, reloads it in float32 on the CPU (eager attention) and writes
golden.json: greedy continuations plus top-5 logprobs. llama and qwen3 also get beam-search and
repetition-penalty goldens from transformers' generate(). PEFT adapters (trained briefly on Python
source so they change the output) get golden_adapters.json, computed from the saved adapter files.

Token ids: 0 pad, 1 bos, 2 eos, 3 + b for the byte b (vocab 512; ids above 258 never occur).

Usage: python3 tools/make_fixtures.py --corpus .cache/corpus --out tests/fixtures/models
       [--families llama,qwen3] [--steps 400] [--no-adapters]
"""
import argparse
import json
import math
import random
import shutil
import sys
import time
import traceback
from pathlib import Path

import torch
import torch.nn.functional as F

PAD, BOS, EOS, OFFSET, VOCAB = 0, 1, 2, 3, 512
NEW_TOKENS, TOP_K = 16, 5
PROMPT_LENGTHS = [1, 2, 5, 11, 24, 40, 63, 80]
MIN_MARGIN = 0.05  # wanted gap (nats) between the best and second-best logprob at every greedy step
MAX_TRIES = 20
ALL7 = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

FAMILIES = {
    "llama": ("LlamaConfig", dict(
        hidden_size=128, intermediate_size=352, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5, tie_word_embeddings=False,
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 64})),
    "llama2": ("LlamaConfig", dict(
        hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, max_position_embeddings=256, rms_norm_eps=1e-5, tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0})),
    "mistral": ("MistralConfig", dict(
        hidden_size=128, intermediate_size=320, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5, tie_word_embeddings=False,
        sliding_window=32, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})),
    "qwen2": ("Qwen2Config", dict(
        hidden_size=64, intermediate_size=224, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6, tie_word_embeddings=True,
        use_sliding_window=False, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})),
    "qwen3": ("Qwen3Config", dict(
        hidden_size=64, intermediate_size=192, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, max_position_embeddings=256, rms_norm_eps=1e-6,
        tie_word_embeddings=False, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})),
    "gpt2": ("GPT2Config", dict(
        n_positions=256, n_embd=64, n_layer=2, n_head=4, activation_function="gelu_new", resid_pdrop=0.0,
        embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=1e-5, tie_word_embeddings=True)),
}
ENGINE_FAMILIES = ("llama", "qwen3")

# (name, LoraConfig kwargs, dtype the adapter tensors are saved in)
ADAPTERS = {
    "llama": [
        ("qv_r8", dict(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]), "float32"),
        ("rslora", dict(r=16, lora_alpha=8, use_rslora=True,
                        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]), "float32"),
        ("dora", dict(r=8, lora_alpha=16, use_dora=True,
                      target_modules=["q_proj", "v_proj", "o_proj", "down_proj"]), "float32"),
        ("patterns", dict(r=8, lora_alpha=16, target_modules=ALL7,
                          rank_pattern={"q_proj": 4, "layers.1.mlp.down_proj": 16},
                          alpha_pattern={"v_proj": 32, "layers.0.mlp.up_proj": 4}), "float32"),
        ("layers1", dict(r=8, lora_alpha=16, target_modules=ALL7, layers_to_transform=[1]), "float32"),
        ("bf16", dict(r=8, lora_alpha=16, target_modules=ALL7), "bfloat16"),
        ("f16", dict(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]), "float16"),
    ],
    "qwen3": [("all_linear", dict(r=8, lora_alpha=16, target_modules="all-linear"), "float32")],
    "gpt2": [("conv1d", dict(r=8, lora_alpha=16, target_modules=["c_attn", "c_proj", "c_fc"],
                             fan_in_fan_out=True), "float32")],
}

GREEDY_METHOD = ("manual loop on CPU in float32 (eager attention, bf16 weights upcast): each step runs a full "
                 "forward over prompt + tokens so far (no KV cache), takes log_softmax of the last position, "
                 "appends the argmax; EOS does not stop it (16 new tokens always)")


def log(*a):
    print(*a, flush=True)


def enc(text):
    return [b + OFFSET for b in text.encode("utf-8")]


class Corpus:
    """Fortunes entries (every 20th held out for prompts) and Python files (every 10th held out)."""

    def __init__(self, root):
        root = Path(root)
        entries = []
        for p in sorted((root / "fortunes").glob("*.txt")):
            entries += [e.strip("\n") for e in p.read_text(encoding="utf-8").split("\n%\n") if e.strip()]
        py = [p.read_text(encoding="utf-8") for p in sorted((root / "python").glob("*.py"))]
        if not entries or not py:
            raise SystemExit(f"empty corpus under {root}: run scripts/gather-corpus.sh")
        self.train = [e for i, e in enumerate(entries) if i % 20 != 0]
        self.heldout = [e for i, e in enumerate(entries) if i % 20 == 0]
        self.py_train = [t for i, t in enumerate(py) if i % 10 != 0]
        self.heldout_stream = self._stream(self.heldout)
        self._cache = {}
        log(f"corpus: {len(self.train)} train / {len(self.heldout)} held-out fortunes, {len(py)} python files")

    @staticmethod
    def _stream(docs):
        out = []
        for d in docs:
            out.append(BOS)
            out += enc(d)
            out.append(EOS)
        return out

    def tensor(self, which, device):
        """Training stream ("fortunes" or "python") as one id tensor on `device`, built once."""
        key = (which, str(device))
        if key not in self._cache:
            docs = self.train if which == "fortunes" else self.py_train
            self._cache[key] = torch.tensor(self._stream(docs), dtype=torch.long, device=device)
        return self._cache[key]

    def candidates(self, length, style, rng):
        """Prompts of exactly `length` ids: style 0 = BOS + start of a held-out entry, 1 = any window."""
        if length == 1:
            yield [BOS]
            for c in "TAIWHSMYOBNC":
                yield [ord(c) + OFFSET]
            return
        long_enough = [e for e in self.heldout if len(e.encode("utf-8")) >= length]
        for _ in range(MAX_TRIES):
            if style == 0:
                yield [BOS] + enc(rng.choice(long_enough))[:length - 1]
            else:
                s = rng.randrange(0, len(self.heldout_stream) - length)
                yield self.heldout_stream[s:s + length]


def build_config(cls_name, kw):
    import transformers
    cls = getattr(transformers, cls_name)
    full = dict(kw, vocab_size=VOCAB, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD)
    # GPT2Config may not declare pad_token_id / tie_word_embeddings (GPT-2 ties by default anyway).
    drops = [[], ["pad_token_id"]] + ([["pad_token_id", "tie_word_embeddings"]] if cls_name == "GPT2Config" else [])
    for i, drop in enumerate(drops):
        try:
            return cls(**{k: v for k, v in full.items() if k not in drop})
        except Exception as e:
            if i == len(drops) - 1:
                raise
            log(f"  {cls_name}(**kwargs) refused ({type(e).__name__}: {e}); retrying without {drops[i + 1]}")


def train(model, stream, steps, lr, batch=32, seq_len=128, seed=0, tag=""):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=0.0)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    ar = torch.arange(seq_len + 1, device=stream.device)
    warm = max(1, steps // 20)
    model.train()
    t0, loss = time.time(), None
    for step in range(steps):
        f = min(1.0, (step + 1) / warm) * (0.1 + 0.45 * (1 + math.cos(math.pi * step / steps)))
        for g in opt.param_groups:
            g["lr"] = lr * f
        off = torch.randint(0, stream.numel() - seq_len - 1, (batch,), generator=gen).to(stream.device)
        x = stream[off[:, None] + ar[None, :]]
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(input_ids=x[:, :-1], use_cache=False).logits
        loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            log(f"  {tag} step {step:4d} loss {loss.item():.4f} ({time.time() - t0:.1f}s)")
    model.eval()
    return loss.item()


@torch.no_grad()
def greedy(model, prompt):
    ids, new, tops, margin = list(prompt), [], [], float("inf")
    for _ in range(NEW_TOKENS):
        logits = model(input_ids=torch.tensor([ids], dtype=torch.long), use_cache=False).logits[0, -1].float()
        lp = torch.log_softmax(logits, dim=-1)
        vals, idx = torch.topk(lp, TOP_K)
        nxt = int(idx[0])
        new.append(nxt)
        ids.append(nxt)
        tops.append([[int(i), float(v)] for i, v in zip(idx.tolist(), vals.tolist())])
        margin = min(margin, float(vals[0] - vals[1]))
    return new, tops, margin


def choose_cases(model, corpus, seed):
    cases = []
    for i, length in enumerate(PROMPT_LENGTHS):
        rng = random.Random(seed * 1000 + length)
        best = None
        for prompt in corpus.candidates(length, i % 2, rng):
            new, tops, margin = greedy(model, prompt)
            if best is None or margin > best["min_margin"]:
                best = {"prompt_ids": prompt, "greedy_ids": new, "top_logprobs": tops, "min_margin": margin}
            if margin >= MIN_MARGIN:
                break
        if best["min_margin"] < MIN_MARGIN:
            log(f"  WARNING: prompt length {length}: best min margin only {best['min_margin']:.4g}")
        cases.append(best)
    log("  cases: " + ", ".join(f"len {len(c['prompt_ids'])} margin {c['min_margin']:.3f}" for c in cases))
    return cases


@torch.no_grad()
def check_against_generate(model, cases):
    """The manual loop must agree with generate() (KV cache path) whenever greedy emitted no EOS."""
    same = comparable = 0
    for c in cases:
        if EOS in c["greedy_ids"]:
            continue
        x = torch.tensor([c["prompt_ids"]], dtype=torch.long)
        out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), do_sample=False,
                             max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, eos_token_id=EOS,
                             pad_token_id=PAD)
        seq = out.sequences if hasattr(out, "sequences") else out
        comparable += 1
        same += seq[0, x.shape[1]:].tolist() == c["greedy_ids"]
    log(f"  generate() agrees with the manual loop on {same}/{comparable} cases")


def strip_pad(ids):
    while ids and ids[-1] == PAD:
        ids = ids[:-1]
    return ids


@torch.no_grad()
def engine_goldens(model, corpus, seed):
    rng = random.Random(seed)
    beam_kw = dict(do_sample=False, num_beams=4, num_return_sequences=4, max_new_tokens=12, length_penalty=1.0,
                   eos_token_id=EOS, pad_token_id=PAD)
    rep_kw = dict(do_sample=False, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, repetition_penalty=1.3,
                  eos_token_id=EOS, pad_token_id=PAD)
    # near_end / complete: entries without an attribution line, so that beams tend to end with EOS
    plain = [e for e in corpus.heldout if 25 <= len(e.encode("utf-8")) <= 80 and "--" not in e
             and e.rstrip()[-1:] in ".!?"]
    mid = [e for e in corpus.heldout if len(e.encode("utf-8")) >= 40]
    beams = []
    for kind in ("mid", "near_end", "complete"):
        best = None
        for _ in range(10):
            if kind == "mid":
                prompt = [BOS] + enc(rng.choice(mid))[:20]
            elif kind == "near_end":
                prompt = [BOS] + enc(rng.choice(plain))[:-2]
            else:
                prompt = [BOS] + enc(rng.choice(plain))
            x = torch.tensor([prompt], dtype=torch.long)
            results = []
            for es in (False, True):
                out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), early_stopping=es,
                                     output_scores=True, return_dict_in_generate=True, **beam_kw)
                results.append({"prompt_ids": prompt, "num_beams": 4, "num_return_sequences": 4,
                                "max_new_tokens": 12, "length_penalty": 1.0, "early_stopping": es,
                                "beams": [strip_pad(s) for s in out.sequences[:, x.shape[1]:].tolist()],
                                "scores": [float(s) for s in out.sequences_scores.tolist()]})
            gap = min(r["scores"][0] - r["scores"][1] for r in results)
            if best is None or gap > best[0]:
                best = (gap, results)
            if gap >= 0.01:
                break
        with_eos = [sum(EOS in b for b in r["beams"]) for r in best[1]]
        log(f"  beam ({kind}): top-2 score gap {best[0]:.4f}, beams ending in EOS {with_eos}, top beams "
            f"{[r['beams'][0] for r in best[1]]}")
        beams += best[1]
    reps = []
    for length in (5, 24, 40):
        best = None
        for prompt in corpus.candidates(length, length % 2, random.Random(seed + length)):
            x = torch.tensor([prompt], dtype=torch.long)
            out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), output_scores=True,
                                 return_dict_in_generate=True, **rep_kw)
            margin = min(float(torch.topk(s[0].float(), 2).values.diff().abs()) for s in out.scores)
            case = {"prompt_ids": prompt, "penalty": 1.3, "max_new_tokens": NEW_TOKENS,
                    "min_new_tokens": NEW_TOKENS, "greedy_ids": out.sequences[0, x.shape[1]:].tolist(),
                    "min_margin": margin}
            if best is None or margin > best["min_margin"]:
                best = case
            if margin >= MIN_MARGIN:
                break
        log(f"  repetition_penalty len {length}: margin {best['min_margin']:.3f} ids {best['greedy_ids']}")
        reps.append(best)
    return {
        "generate_kwargs": {
            "beam": dict(beam_kw, early_stopping="per case", output_scores=True, return_dict_in_generate=True,
                         note="beams = sequences minus the prompt, trailing pad (0) removed, best first; "
                              "scores = sequences_scores (sum of logprobs / generated_length**length_penalty)"),
            "repetition_penalty": dict(rep_kw, note="min_new_tokens=16 masks EOS for all 16 steps; the penalty "
                                                    "applies to prompt and generated ids (HF semantics)"),
        },
        "beam": beams,
        "repetition_penalty": reps,
    }


def load_reference(fdir):
    """float32 model on the CPU from the saved bf16 files; checks every saved tensor arrived unchanged."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(str(fdir), dtype=torch.float32, attn_implementation="eager")
    model.eval()
    saved = load_file(str(fdir / "model.safetensors"))
    state = model.state_dict()
    unknown = [k for k in saved if k not in state]
    bad = [k for k, v in saved.items() if k in state and not torch.equal(state[k], v.float())]
    missing = sorted(set(state) - set(saved))
    if unknown:
        log(f"  WARNING: file tensors with no model parameter of that name: {unknown[:8]}")
    if bad:
        raise RuntimeError(f"{fdir}: reloaded weights differ from the file for {bad[:5]}")
    log(f"  reloaded in float32; state keys absent from the file (tied or buffers): {missing}")
    return model


def summarize_file(path):
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        return {k: [str(f.get_slice(k).get_dtype()), list(f.get_slice(k).get_shape())] for k in f.keys()}


def make_family(name, corpus, args, dev):
    from transformers import AutoModelForCausalLM, GenerationConfig
    import transformers
    cls_name, kw = FAMILIES[name]
    seed = 17 + list(FAMILIES).index(name)
    torch.manual_seed(seed)
    cfg = build_config(cls_name, kw)
    model = AutoModelForCausalLM.from_config(cfg).to(dev)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"[{name}] {type(model).__name__}, {n_params} parameters")
    stream = corpus.tensor("fortunes", dev)
    final_loss = train(model, stream, args.steps, args.lr, seed=seed, tag=name)
    model = model.to(torch.bfloat16)
    model.generation_config = GenerationConfig(bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD)
    fdir = Path(args.out) / name
    if fdir.exists():
        shutil.rmtree(fdir)
    model.save_pretrained(str(fdir))
    if not (fdir / "generation_config.json").exists():
        model.generation_config.save_pretrained(str(fdir))
    del model
    log(f"  config.json: {(fdir / 'config.json').read_text()}")
    log(f"  model.safetensors: {json.dumps(summarize_file(fdir / 'model.safetensors'))}")
    ref = load_reference(fdir)
    cases = choose_cases(ref, corpus, seed=1)
    check_against_generate(ref, cases)
    golden = {
        "family": name,
        "format_version": 1,
        "model_type": ref.config.model_type,
        "reference": f"transformers {transformers.__version__}, torch {torch.__version__}, float32 on CPU, "
                     "eager attention, bf16 weights upcast",
        "token_ids": {"pad": PAD, "bos": BOS, "eos": EOS, "byte_offset": OFFSET},
        "train_loss": final_loss,
        "generate_kwargs": {"greedy": {"method": GREEDY_METHOD, "max_new_tokens": NEW_TOKENS, "top_k": TOP_K,
                                       "eos_stops": False}},
        "cases": cases,
    }
    if name in ENGINE_FAMILIES:
        golden["engine"] = engine_goldens(ref, corpus, seed=100 + seed)
    (fdir / "golden.json").write_text(json.dumps(golden, indent=1) + "\n")
    if not args.no_adapters and name in ADAPTERS:
        make_adapters(name, fdir, ref, corpus, args, dev)


def cast_adapter_file(path, dtype_name):
    from safetensors.torch import load_file, save_file
    dtype = getattr(torch, dtype_name)
    tensors = {k: v.to(dtype).contiguous() for k, v in load_file(str(path)).items()}
    save_file(tensors, str(path), metadata={"format": "pt"})


def make_adapters(family, fdir, base_ref, corpus, args, dev):
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM
    py_stream = corpus.tensor("python", dev)
    goldens = {}
    for i, (aname, kw, dtype_name) in enumerate(ADAPTERS[family]):
        try:
            t0 = time.time()
            torch.manual_seed(1000 + i)
            base = AutoModelForCausalLM.from_pretrained(str(fdir), dtype=torch.float32).to(dev)
            pm = get_peft_model(base, LoraConfig(lora_dropout=0.0, bias="none", task_type="CAUSAL_LM", **kw))
            train(pm, py_stream, args.adapter_steps, args.adapter_lr, seed=2000 + i, tag=f"{family}/{aname}")
            adir = fdir / "adapters" / aname
            if adir.exists():
                shutil.rmtree(adir)
            pm.save_pretrained(str(adir))
            del pm, base
            (adir / "README.md").unlink(missing_ok=True)
            cfg_path = adir / "adapter_config.json"
            acfg = json.loads(cfg_path.read_text())
            acfg["base_model_name_or_path"] = f"tests/fixtures/models/{family}"
            if isinstance(acfg.get("target_modules"), list):  # peft saves a set: fix the order
                acfg["target_modules"] = sorted(acfg["target_modules"])
            if kw.get("target_modules") == "all-linear":
                acfg["target_modules"] = "all-linear"  # peft saves the expanded list; keep what the user wrote
            cfg_path.write_text(json.dumps(acfg, indent=2, sort_keys=True) + "\n")
            if dtype_name != "float32":
                cast_adapter_file(adir / "adapter_model.safetensors", dtype_name)
            log(f"  adapter {aname}: {json.dumps(summarize_file(adir / 'adapter_model.safetensors'))}")
            ref_base = AutoModelForCausalLM.from_pretrained(str(fdir), dtype=torch.float32,
                                                            attn_implementation="eager")
            ref = PeftModel.from_pretrained(ref_base, str(adir))
            ref.eval()
            cases = choose_cases(ref, corpus, seed=1)
            differs = sum(greedy(base_ref, c["prompt_ids"])[0] != c["greedy_ids"] for c in cases)
            log(f"  adapter {aname}: greedy differs from the base on {differs}/{len(cases)} cases "
                f"({time.time() - t0:.1f}s)")
            goldens[aname] = {"dtype": dtype_name, "lora_config": kw, "differs_from_base": differs,
                              "cases": cases}
        except Exception:
            log(f"  ADAPTER FAILED {family}/{aname}:\n{traceback.format_exc()}")
    (fdir / "golden_adapters.json").write_text(json.dumps({
        "family": family,
        "reference": "peft model (PeftModel.from_pretrained on the saved adapter) over the float32 base on CPU",
        "generate_kwargs": {"greedy": {"method": GREEDY_METHOD, "max_new_tokens": NEW_TOKENS, "top_k": TOP_K,
                                       "eos_stops": False}},
        "adapters": goldens,
    }, indent=1) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=".cache/corpus")
    ap.add_argument("--out", default="tests/fixtures/models")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--adapter-steps", type=int, default=250)
    ap.add_argument("--adapter-lr", type=float, default=5e-3)
    ap.add_argument("--no-adapters", action="store_true")
    args = ap.parse_args()
    import transformers
    import peft
    log(f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}")
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    if dev == "cpu":
        log("WARNING: no GPU, training on the CPU (slow)")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_num_threads(8)
    corpus = Corpus(args.corpus)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    failed = []
    for name in args.families.split(","):
        t0 = time.time()
        try:
            make_family(name, corpus, args, dev)
        except Exception:
            log(f"FAMILY FAILED {name}:\n{traceback.format_exc()}")
            failed.append(name)
        log(f"[{name}] done in {time.time() - t0:.1f}s")
    if failed:
        log(f"failed families: {failed}")
        sys.exit(1)


if __name__ == "__main__":
    main()
