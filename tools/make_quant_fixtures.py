#!/usr/bin/env python3
"""Makes tests/fixtures/quant/: transformers goldens over quantized-then-dequantized weights.

For each quantizer variant and each fixture model (tests/fixtures/models/{llama,qwen3}), it loads the
bf16 checkpoint in float32, replaces the weight of every linear layer inside a numbered decoder block
(model.layers.N.*) by quantize-then-dequantize computed here in torch with the formulas of issue 5
(embeddings and lm_head stay as they are), and records greedy continuations with top-5 logprobs,
exactly as tools/make_fixtures.py does for the plain models (float32 on the CPU, eager attention, a full
forward per step, 16 new tokens, EOS does not stop). It also writes a QLoRA golden: the peft adapter
tests/fixtures/models/llama/adapters/qv_r8 over the nf4-dequantized llama base.

Formulas (all float32; torch.round rounds half to even):
  int8   s = max|w_row| / 127; q = clamp(round(w / s), -127, 127); w' = q * s
  int4   groups of G along the input: s = max(max - min, 1e-5) / 15; z = clamp(-round(min / s), 0, 15);
         q = clamp(round(w / s) + z, 0, 15); w' = (q - z) * s                          (AutoAWQ)
  nf4    blocks of 64 over the flattened weight: absmax; q = index of the NF4 code value nearest to
         w / absmax (first on a tie); w' = code[q] * absmax; with double quantization the absmax is
         replaced by code2[q2] * absmax2 + offset (offset = mean(absmax), blocks of 256, bitsandbytes'
         signed dynamic 8-bit code)
  fp8    s = max|w| / 448 (per tensor, or per output row); w' = float(e4m3fn(w / s)) * s

Each golden also records, per quantized module, the float64 sum and absolute sum of the dequantized
weight, so the C++ tests can check that the plugins compute the same numbers as torch.

Usage (GPU machine or any machine with torch, transformers 5, peft):
  python3 tools/make_quant_fixtures.py --fixtures tests/fixtures/models --out tests/fixtures/quant
Output: <out>/<variant>/golden.json and <out>/qlora/golden.json.
"""
import argparse
import json
import math
import re
import sys
import time
from pathlib import Path

import torch

NEW_TOKENS, TOP_K, MIN_MARGIN = 16, 5, 0.02
MODELS = ("llama", "qwen3")
BLOCK_RE = re.compile(r"\.\d+\.")

NF4_CODE = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
            -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
            0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
            0.7229568362236023, 1.0]

GREEDY_METHOD = ("manual loop on CPU in float32 (eager attention): the checkpoint's bf16 weights upcast, every "
                 "linear layer of the decoder blocks replaced by its quantized-then-dequantized weight; each step "
                 "runs a full forward over prompt + tokens so far, takes log_softmax of the last position, appends "
                 "the argmax; EOS does not stop it (16 new tokens always)")


def log(*a):
    print(*a, flush=True)


# ------------------------------------------------------------------ formulas --
def int8_deq(w):
    s = w.abs().amax(dim=1, keepdim=True) / 127.0
    safe = torch.where(s > 0, s, torch.ones_like(s))
    q = torch.clamp(torch.round(w / safe), -127, 127)
    q = torch.where(s > 0, q, torch.zeros_like(q))
    return q * s


def int4_deq(w, group):
    n, k = w.shape
    if k % group:
        raise ValueError(f"group {group} does not divide {k}")
    x = w.reshape(n, k // group, group)
    mx = x.amax(dim=2, keepdim=True)
    mn = x.amin(dim=2, keepdim=True)
    s = (mx - mn).clamp(min=1e-5) / 15
    z = (-torch.round(mn / s)).clamp(0, 15)
    q = torch.clamp(torch.round(x / s) + z, 0, 15)
    return ((q - z) * s).reshape(n, k)


def nearest_index(x, code):
    """Index of the code value nearest to each x (argmin: the first on a tie)."""
    return (x.unsqueeze(-1) - code).abs().argmin(dim=-1)


def blockwise(flat, block):
    n = flat.numel()
    nb = (n + block - 1) // block
    pad = nb * block - n
    return torch.cat([flat, flat.new_zeros(pad)]).reshape(nb, block), n


def dynamic_code():
    """bitsandbytes create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)."""
    data = []
    for i in range(7):
        b = torch.linspace(0.1, 1, 2 ** i + 1, dtype=torch.float32)
        means = (b[:-1] + b[1:]) / 2.0
        data += ((10 ** (-6 + i)) * means).tolist()
        data += (-(10 ** (-6 + i)) * means).tolist()
    data += [0.0, 1.0]
    data.sort()
    assert len(data) == 256
    return torch.tensor(data, dtype=torch.float32)


def absmax_roundtrip(absmax):
    """bitsandbytes' double quantization of the absmax values, and back."""
    code2 = dynamic_code()
    offset = absmax.double().mean().float()
    a = absmax - offset
    x, n = blockwise(a, 256)
    m = x.abs().amax(dim=1)
    safe = torch.where(m > 0, m, torch.ones_like(m))
    xn = torch.where(m[:, None] > 0, x / safe[:, None], torch.zeros_like(x))
    deq = code2[nearest_index(xn, code2)] * m[:, None] + offset
    return deq.reshape(-1)[:n]


def nf4_deq(w, block=64, double=False):
    code = torch.tensor(NF4_CODE, dtype=torch.float32)
    x, n = blockwise(w.reshape(-1), block)
    absmax = x.abs().amax(dim=1)
    safe = torch.where(absmax > 0, absmax, torch.ones_like(absmax))
    xn = torch.where(absmax[:, None] > 0, x / safe[:, None], torch.zeros_like(x))
    idx = nearest_index(xn, code)
    if double:
        absmax = absmax_roundtrip(absmax)
    return (code[idx] * absmax[:, None]).reshape(-1)[:n].reshape(w.shape)


def fp8_deq(w, per_channel):
    amax = w.abs().amax(dim=1, keepdim=True) if per_channel else w.abs().amax()
    s = amax / 448.0
    safe = torch.where(s > 0, s, torch.ones_like(s))
    q = (w / safe).to(torch.float8_e4m3fn).float()
    q = torch.where(s > 0, q, torch.zeros_like(q))
    return q * s


# name -> (quantization.method, plugin options, dequantize function)
VARIANTS = {
    "int8": ("int8", {}, int8_deq),
    "int4": ("int4", {"group_size": 32}, lambda w: int4_deq(w, 32)),
    "nf4": ("nf4", {}, lambda w: nf4_deq(w)),
    "nf4_double": ("nf4", {"double_quant": True}, lambda w: nf4_deq(w, double=True)),
    "fp8": ("fp8", {}, lambda w: fp8_deq(w, False)),
    "fp8_channel": ("fp8", {"per_channel": True}, lambda w: fp8_deq(w, True)),
}


# ------------------------------------------------------------------ models ----
def load_model(path):
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, attn_implementation="eager")
    model.eval()
    return model


@torch.no_grad()
def quantize_model(model, fn):
    """Replaces the decoder blocks' linear weights; returns {module: [sum, abs sum]} of the new weights."""
    sums = {}
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) and BLOCK_RE.search(name + "."):
            w = mod.weight.data.float().cpu()
            d = fn(w)
            if d.shape != w.shape or not torch.isfinite(d).all():
                raise RuntimeError(f"{name}: bad dequantized weight")
            mod.weight.data.copy_(d)
            sums[name] = [float(d.double().sum()), float(d.double().abs().sum())]
    if not sums:
        raise RuntimeError("no linear layer inside a numbered block")
    return sums


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


def candidates(case):
    """The golden prompt, then windows of the same length over prompt + its golden continuation."""
    p = case["prompt_ids"]
    yield p
    stream = p + case["greedy_ids"]
    for start in range(1, len(stream) - len(p) + 1):
        yield stream[start:start + len(p)]


def choose_cases(model, base_cases):
    out = []
    for c in base_cases:
        best = None
        for prompt in candidates(c):
            new, tops, margin = greedy(model, prompt)
            if best is None or margin > best["min_margin"]:
                best = {"prompt_ids": prompt, "greedy_ids": new, "top_logprobs": tops, "min_margin": margin}
            if margin >= MIN_MARGIN:
                break
        if best["min_margin"] < MIN_MARGIN:
            log(f"    WARNING: prompt length {len(c['prompt_ids'])}: best min margin {best['min_margin']:.4g}")
        out.append(best)
    return out


def summary(cases, base):
    same = sum(c["greedy_ids"] == b["greedy_ids"] and c["prompt_ids"] == b["prompt_ids"]
               for c, b in zip(cases, base))
    return (f"{same}/{len(cases)} same as the bf16 golden; margins "
            + ", ".join(f"{c['min_margin']:.3f}" for c in cases))


def make_variant(name, fixtures, out, reference):
    method, options, fn = VARIANTS[name]
    models = {}
    for m in MODELS:
        t0 = time.time()
        base = json.loads((fixtures / m / "golden.json").read_text())["cases"]
        model = load_model(fixtures / m)
        sums = quantize_model(model, fn)
        cases = choose_cases(model, base)
        log(f"  [{name}/{m}] {len(sums)} modules; {summary(cases, base)} ({time.time() - t0:.1f}s)")
        models[m] = {"model": f"tests/fixtures/models/{m}", "cases": cases, "weight_sums": sums}
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "golden.json").write_text(json.dumps({
        "variant": name, "method": method, "options": options, "format_version": 1,
        "reference": reference,
        "generate_kwargs": {"greedy": {"method": GREEDY_METHOD, "max_new_tokens": NEW_TOKENS, "top_k": TOP_K,
                                       "eos_stops": False}},
        "models": models,
    }, indent=1) + "\n")


def make_qlora(fixtures, out, reference):
    from peft import PeftModel
    t0 = time.time()
    adir = fixtures / "llama" / "adapters" / "qv_r8"
    base_cases = json.loads((fixtures / "llama" / "golden_adapters.json").read_text())["adapters"]["qv_r8"]["cases"]
    model = load_model(fixtures / "llama")
    quantize_model(model, lambda w: nf4_deq(w))
    ref = PeftModel.from_pretrained(model, str(adir))
    ref.eval()
    cases = choose_cases(ref, base_cases)
    log(f"  [qlora] nf4 base + qv_r8: {summary(cases, base_cases)} ({time.time() - t0:.1f}s)")
    d = out / "qlora"
    d.mkdir(parents=True, exist_ok=True)
    (d / "golden.json").write_text(json.dumps({
        "variant": "qlora", "method": "nf4", "options": {}, "format_version": 1,
        "model": "tests/fixtures/models/llama", "adapter": "tests/fixtures/models/llama/adapters/qv_r8",
        "reference": reference + "; peft PeftModel.from_pretrained over the nf4-dequantized base",
        "generate_kwargs": {"greedy": {"method": GREEDY_METHOD, "max_new_tokens": NEW_TOKENS, "top_k": TOP_K,
                                       "eos_stops": False}},
        "cases": cases,
    }, indent=1) + "\n")


def self_check():
    """Cheap checks of the formulas on known values before any model work."""
    w = torch.tensor([[0.5, -1.0, 0.3, 0.0, 0.01]])
    assert float((int8_deq(w) - w).abs().max()) <= 0.5 / 127 + 1e-6, int8_deq(w)
    assert int8_deq(w)[0, 1] == -1.0 and int8_deq(w)[0, 3] == 0.0
    # s = 1, z = 0: 1.5 rounds to 2 (half to even), 2.5 to 2
    assert torch.equal(int4_deq(torch.tensor([[0.0, 1.5, 2.5, 15.0]]), 4), torch.tensor([[0.0, 2.0, 2.0, 15.0]]))
    # min -3, max 12: s = 1, z = 3
    assert torch.equal(int4_deq(torch.tensor([[-3.0, 0.0, 4.0, 12.0]]), 4), torch.tensor([[-3.0, 0.0, 4.0, 12.0]]))
    assert torch.equal(nf4_deq(torch.tensor([[1.0, -1.0, 0.0, 0.5]]), block=4),
                       torch.tensor([[1.0, -1.0, 0.0, 0.44070982933044434]]))
    assert torch.equal(fp8_deq(torch.tensor([[448.0, -224.0, 1.0, 0.0]]), False),
                       torch.tensor([[448.0, -224.0, 1.0, 0.0]]))
    code2 = dynamic_code()
    assert float(code2.min()) < 0 and float(code2.max()) == 1.0 and int((code2 == 0).sum()) == 1
    a = torch.rand(300) * 0.1 + 0.01
    assert float((absmax_roundtrip(a) - a).abs().max()) < 1e-3
    log("self-check of the formulas: ok")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixtures", default="tests/fixtures/models")
    ap.add_argument("--out", default="tests/fixtures/quant")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--no-qlora", action="store_true")
    args = ap.parse_args()
    import transformers
    import peft
    torch.set_num_threads(8)
    reference = (f"transformers {transformers.__version__}, peft {peft.__version__}, torch {torch.__version__}, "
                 "float32 on CPU, eager attention")
    log(reference)
    self_check()
    fixtures, out = Path(args.fixtures), Path(args.out)
    failed = []
    for name in args.variants.split(","):
        try:
            make_variant(name, fixtures, out, reference)
        except Exception as e:  # keep going: the other variants are still useful
            import traceback
            log(f"VARIANT FAILED {name}:\n{traceback.format_exc()}")
            failed.append(name)
    if not args.no_qlora:
        try:
            make_qlora(fixtures, out, reference)
        except Exception:
            import traceback
            log(f"QLORA FAILED:\n{traceback.format_exc()}")
            failed.append("qlora")
    if failed:
        log(f"failed: {failed}")
        sys.exit(1)


if __name__ == "__main__":
    main()
