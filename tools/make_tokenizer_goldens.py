#!/usr/bin/env python3
"""Makes the tokenizer test inputs and the Hugging Face reference outputs (goldens).

Subcommands:
  inputs   (any machine, standard library only) writes the generated inputs, which are
           committed: tests/fixtures/tokenizer/corpus_random.jsonl (random Unicode strings
           from a fixed seed) and tests/fixtures/tokenizer/synthetic/<name>/tokenizer.json
           (small BPE tokenizers that exercise the pipeline components the three real
           tokenizers do not use; their vocabularies come from a tiny BPE trainer below).
  goldens  (needs `tokenizers` and `transformers`) encodes the corpus with the real tokenizers
           in .cache/tokenizers/<name>/ (scripts/fetch-tokenizers.sh) and the synthetic ones,
           decodes, renders the chat cases with apply_chat_template, and writes one JSON file per
           tokenizer to --out.
  bench    (needs `tokenizers`) single-thread encode throughput of the Hugging Face tokenizers
           over the documents of bench/tokenizer/make_bench_text.py; prints JSON.
  render   (needs jinja2 only) renders a template the way transformers does, for quick checks.
"""
import argparse
import json
import os
import random
import sys
import time
import unicodedata
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "tokenizer"
REAL_TOKENIZERS = ["llama3", "qwen3", "gemma3"]
RANDOM_SEED = 20261124


# ----------------------------------------------------------------------------- inputs ----
def _assigned(cp):
    if 0xD800 <= cp <= 0xDFFF:
        return False
    return unicodedata.category(chr(cp)) != "Cn"


SCRIPT_POOLS = [
    (0x00C0, 0x024F), (0x0370, 0x03FF), (0x0400, 0x04FF), (0x0530, 0x058F), (0x0590, 0x05FF),
    (0x0600, 0x06FF), (0x0900, 0x097F), (0x0980, 0x09FF), (0x0E00, 0x0E7F), (0x10A0, 0x10FF),
    (0x1100, 0x11FF), (0x3040, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0x0300, 0x036F),
    (0x2000, 0x206F), (0x20A0, 0x20C0), (0x2190, 0x22FF), (0x1F300, 0x1F64F), (0x1F900, 0x1F9FF),
    (0xFF00, 0xFFEF), (0x1D400, 0x1D7FF), (0x0030, 0x0039), (0x0660, 0x0669),
]
SPECIALS = ["\u200d", "\ufe0f", "\u00a0", "\u3000", "\n", "\r\n", "\t", "  ", "'s", "'LL", "\u0301",
            "<|im_start|>", "<bos>", "<|eot_id|>", "\u2028", "\u0085", "\u200b", "\ufeff"]


def random_strings(count, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        n = rng.randint(1, 48)
        parts = []
        for _ in range(n):
            r = rng.random()
            if r < 0.33:
                parts.append(chr(rng.randint(0x20, 0x7E)))
            elif r < 0.70:
                lo, hi = SCRIPT_POOLS[rng.randrange(len(SCRIPT_POOLS))]
                while True:
                    cp = rng.randint(lo, hi)
                    if _assigned(cp):
                        break
                parts.append(chr(cp))
            elif r < 0.92:
                while True:
                    cp = rng.randint(0, 0x10FFFF) if rng.random() < 0.5 else rng.randint(0, 0xFFFF)
                    if _assigned(cp):
                        break
                parts.append(chr(cp))
            else:
                parts.append(SPECIALS[rng.randrange(len(SPECIALS))])
        out.append("".join(parts))
    return out


def bytes_to_unicode():
    """The GPT-2 byte-to-character table that byte-level BPE vocabularies are written in."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def train_bpe(words, alphabet, num_merges, prefix=""):
    """A tiny BPE trainer: words is a Counter of strings; returns (vocab list, merges list).
    With prefix, every symbol but a word's first carries it (continuing_subword_prefix)."""
    vocab = list(alphabet)
    seen = set(vocab)
    splits = {}
    for w in words:
        syms = [c if i == 0 else prefix + c for i, c in enumerate(w)]
        for s in syms:
            if s not in seen:
                seen.add(s)
                vocab.append(s)
        splits[w] = syms
    merges = []
    for _ in range(num_merges):
        pairs = Counter()
        for w, freq in words.items():
            syms = splits[w]
            for a, b in zip(syms, syms[1:]):
                pairs[(a, b)] += freq
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], [-ord(c) for c in kv[0][0] + kv[0][1]]))[0]
        a, b = best
        merged = a + (b[len(prefix):] if prefix and b.startswith(prefix) else b)
        merges.append([a, b])
        if merged not in seen:
            seen.add(merged)
            vocab.append(merged)
        for w in words:
            syms = splits[w]
            i, out = 0, []
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == a and syms[i + 1] == b:
                    out.append(merged)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            splits[w] = out
    return vocab, merges


def jsonl_lines(path):
    """The lines of a JSONL file; split on '\\n' only (str.splitlines also splits on U+2028)."""
    return [l for l in Path(path).read_text(encoding="utf-8").split("\n") if l.strip()]


def training_words(transform):
    words = Counter()
    for line in jsonl_lines(FIXTURES / "corpus_manual.jsonl"):
        text = json.loads(line)["text"]
        for w in text.split(" "):
            w = transform(w)
            if w:
                words[w] += 1
    return words


def added(id_, content, special=True, lstrip=False, rstrip=False, single_word=False, normalized=None):
    return {"id": id_, "content": content, "single_word": single_word, "lstrip": lstrip, "rstrip": rstrip,
            "normalized": (not special) if normalized is None else normalized, "special": special}


def bpe_model(vocab, merges, **opts):
    model = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
             "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False}
    model.update(opts)
    model["vocab"] = {tok: i for i, tok in enumerate(vocab)}
    model["merges"] = merges
    return model


def tokenizer_json(model, added_tokens, normalizer, pre_tokenizer, post_processor, decoder):
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added_tokens,
            "normalizer": normalizer, "pre_tokenizer": pre_tokenizer, "post_processor": post_processor,
            "decoder": decoder, "model": model}


def split(pattern, behavior, invert=False, regex=True):
    return {"type": "Split", "pattern": {"Regex" if regex else "String": pattern}, "behavior": behavior, "invert": invert}


def template(single, specials):
    return {"type": "TemplateProcessing", "single": single,
            "pair": single + [{"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {t: {"id": t, "ids": [i], "tokens": [t]} for t, i in specials}}


def synthetic_tokenizers():
    b2u = bytes_to_unicode()
    byte_alpha = [b2u[b] for b in range(256)]
    bl_words = training_words(lambda w: "".join(b2u[b] for b in (" " + w).encode("utf-8")))
    specials = ["<s>", "</s>", "<unk>", "<mask>"]
    bl_vocab, bl_merges = train_bpe(bl_words, specials + byte_alpha, 400)
    sid = {t: i for i, t in enumerate(bl_vocab)}
    out = {}

    out["bytelevel_template"] = tokenizer_json(
        bpe_model(bl_vocab, bl_merges),
        [added(sid["<s>"], "<s>"), added(sid["</s>"], "</s>"), added(sid["<mask>"], "<mask>", lstrip=True),
         added(len(bl_vocab), "xyzzy", special=False, single_word=True),
         added(len(bl_vocab) + 1, "Hello", special=False, normalized=True, rstrip=True),
         added(len(bl_vocab) + 2, "[SEP]", special=True, rstrip=True, lstrip=True)],
        None,
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
            template([{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                      {"SpecialToken": {"id": "</s>", "type_id": 0}}], [("<s>", sid["<s>"]), ("</s>", sid["</s>"])])]},
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True})

    out["split_behaviours"] = tokenizer_json(
        bpe_model(bl_vocab, bl_merges),
        [added(sid["<s>"], "<s>"), added(sid["</s>"], "</s>")],
        {"type": "Sequence", "normalizers": [{"type": "NFD"}, {"type": "Lowercase"}, {"type": "NFC"}]},
        {"type": "Sequence", "pretokenizers": [
            split("\\d+", "MergedWithPrevious"), split("-", "MergedWithNext", regex=False),
            split("[aeiou]+", "Contiguous"), split(" ", "Removed", regex=False),
            split("\\p{P}", "MergedWithNext", invert=True),
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False})

    out["split_inverted"] = tokenizer_json(
        bpe_model(bl_vocab, bl_merges),
        [added(sid["<s>"], "<s>")],
        {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Strip", "strip_left": True, "strip_right": True}]},
        {"type": "Sequence", "pretokenizers": [
            split("\\s+", "Contiguous", invert=True), split("(?i)[a-f]", "Isolated", invert=True),
            split("x", "Removed", invert=True, regex=False), split("\\w+", "MergedWithNext"),
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True}]},
        None,
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True})

    # SentencePiece-like vocabularies ("▁" for spaces, byte fallback for the rest).
    meta = "\u2581"
    sp_words = training_words(lambda w: meta + w)
    ascii_alpha = [chr(c) for c in range(0x21, 0x7F)] + [meta] + list("éèàçüößñ中文日本語")
    byte_tokens = ["<0x%02X>" % b for b in range(256)]
    sp_vocab, sp_merges = train_bpe(sp_words, ["<unk>", "<s>", "</s>"] + byte_tokens + ascii_alpha, 400)
    spid = {t: i for i, t in enumerate(sp_vocab)}
    out["sp_legacy"] = tokenizer_json(
        bpe_model(sp_vocab, sp_merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True),
        [added(0, "<unk>"), added(1, "<s>"), added(2, "</s>"),
         added(len(sp_vocab), "<extra>", special=False, normalized=False, lstrip=True, rstrip=True)],
        {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": meta},
                                             {"type": "Replace", "pattern": {"String": " "}, "content": meta}]},
        None,
        template([{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}], [("<s>", 1)]),
        {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": meta}, "content": " "}, {"type": "ByteFallback"},
            {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]})

    out["metaspace_first"] = tokenizer_json(
        bpe_model(sp_vocab, sp_merges, unk_token="<unk>", fuse_unk=False, byte_fallback=False),
        [added(0, "<unk>"), added(1, "<s>"), added(2, "</s>"),
         added(len(sp_vocab), "<sep>", special=True, rstrip=True)],
        {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]},
        {"type": "Metaspace", "replacement": meta, "prepend_scheme": "first", "split": True},
        {"type": "TemplateProcessing",
         "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
         "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": {"</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}},
        {"type": "Metaspace", "replacement": meta, "prepend_scheme": "first", "split": True})

    out["metaspace_always"] = tokenizer_json(
        bpe_model(sp_vocab, sp_merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True),
        [added(0, "<unk>"), added(1, "<s>"), added(2, "</s>")],
        {"type": "Lowercase"},
        {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "Metaspace", "replacement": meta, "prepend_scheme": "always", "split": False}]},
        None,
        {"type": "Sequence", "decoders": [{"type": "ByteFallback"},
                                          {"type": "Metaspace", "replacement": meta, "prepend_scheme": "always", "split": False}]})

    wp_words = training_words(lambda w: w.lower())
    wp_vocab, wp_merges = train_bpe(wp_words, ["[UNK]", "[CLS]", "[SEP]"] + [chr(c) for c in range(0x21, 0x7F)], 300, prefix="##")
    out["classic_pretok"] = tokenizer_json(
        bpe_model(wp_vocab, wp_merges, unk_token="[UNK]", continuing_subword_prefix="##"),
        [added(0, "[UNK]"), added(1, "[CLS]"), added(2, "[SEP]")],
        {"type": "Sequence", "normalizers": [{"type": "NFKD"}, {"type": "StripAccents"}, {"type": "Lowercase"},
                                             {"type": "Strip", "strip_left": True, "strip_right": False}]},
        {"type": "Sequence", "pretokenizers": [{"type": "Whitespace"}, {"type": "Digits", "individual_digits": False},
                                               {"type": "Punctuation", "behavior": "Contiguous"}]},
        {"type": "BertProcessing", "sep": ["[SEP]", 2], "cls": ["[CLS]", 1]},
        None)

    out["wordpiece_style"] = tokenizer_json(
        bpe_model(wp_vocab, wp_merges, unk_token="[UNK]", continuing_subword_prefix="##", fuse_unk=True),
        [added(0, "[UNK]"), added(1, "[CLS]"), added(2, "[SEP]")],
        {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Lowercase"}]},
        {"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"}, {"type": "Punctuation", "behavior": "Isolated"},
                                               {"type": "Digits", "individual_digits": True}]},
        {"type": "RobertaProcessing", "sep": ["[SEP]", 2], "cls": ["[CLS]", 1], "trim_offsets": True, "add_prefix_space": False},
        {"type": "WordPiece", "prefix": "##", "cleanup": True})
    return out


def cmd_inputs(args):
    rnd = random_strings(args.random_count, RANDOM_SEED)
    with open(FIXTURES / "corpus_random.jsonl", "w", encoding="utf-8") as f:
        for i, s in enumerate(rnd):
            f.write(json.dumps({"tag": "random-%03d" % i, "text": s}, ensure_ascii=False) + "\n")
    for name, tok in synthetic_tokenizers().items():
        d = FIXTURES / "synthetic" / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print("wrote %d random strings and the synthetic tokenizers" % len(rnd))


# ---------------------------------------------------------------------------- goldens ----
def load_corpus():
    texts = []
    for name in ("corpus_manual.jsonl", "corpus_random.jsonl"):
        for line in jsonl_lines(FIXTURES / name):
            texts.append(json.loads(line))
    return texts


def load_chats():
    return [json.loads(l) for l in jsonl_lines(FIXTURES / "chats.jsonl")]


def safe(fn):
    try:
        return {"ok": fn()}
    except Exception as e:  # the reference raising is a result too
        return {"error": "%s: %s" % (type(e).__name__, e)}


def golden_for(name, tk, hf, corpus, chats, templates):
    """tk: tokenizers.Tokenizer; hf: a transformers tokenizer or None."""
    rec = {"tokenizer": name, "cases": [], "random_decode": [], "chat": [], "templates": []}
    for i, item in enumerate(corpus):
        text = item["text"]
        case = {"index": i, "tag": item["tag"], "text": text}
        tk_ids = tk.encode(text, add_special_tokens=True).ids
        tk_plain = tk.encode(text, add_special_tokens=False).ids
        if hf is not None:
            ids = hf(text, add_special_tokens=True)["input_ids"]
            plain = hf(text, add_special_tokens=False)["input_ids"]
            case["ids"], case["ids_plain"] = ids, plain
            if tk_ids != ids:
                case["tk_ids"] = tk_ids
            if tk_plain != plain:
                case["tk_ids_plain"] = tk_plain
            case["decode"] = hf.decode(ids, skip_special_tokens=False)
            case["decode_skip"] = hf.decode(ids, skip_special_tokens=True)
            tk_dec = tk.decode(ids, skip_special_tokens=False)
            if tk_dec != case["decode"]:
                case["tk_decode"] = tk_dec
        else:
            case["ids"], case["ids_plain"] = tk_ids, tk_plain
            case["decode"] = tk.decode(tk_ids, skip_special_tokens=False)
            case["decode_skip"] = tk.decode(tk_ids, skip_special_tokens=True)
        rec["cases"].append(case)
    rng = random.Random(RANDOM_SEED + len(name))
    size = tk.get_vocab_size(with_added_tokens=True)
    for _ in range(60):
        ids = [rng.randrange(size) for _ in range(rng.randint(1, 12))]
        dec = hf.decode if hf is not None else tk.decode
        rec["random_decode"].append({"ids": ids, "text": dec(ids, skip_special_tokens=False),
                                     "text_skip": dec(ids, skip_special_tokens=True)})
    if hf is None:
        return rec
    rec["meta"] = {}
    for attr in ("special_tokens_map", "all_special_ids", "bos_token_id", "eos_token_id", "add_bos_token",
                 "add_eos_token", "clean_up_tokenization_spaces"):
        r = safe(lambda: getattr(hf, attr))
        rec["meta"][attr] = repr(r["ok"]) if "ok" in r else r["error"]
    for chat in chats:
        kwargs = dict(chat["kwargs"])
        r = safe(lambda: hf.apply_chat_template(chat["messages"], tokenize=False,
                                                add_generation_prompt=chat["add_generation_prompt"], **kwargs))
        entry = {"name": chat["name"]}
        if "ok" in r and isinstance(r["ok"], str):
            entry["text"] = r["ok"]
            ids = safe(lambda: hf(r["ok"], add_special_tokens=False)["input_ids"])
            entry.update({"ids": ids["ok"]} if "ok" in ids else {"ids_error": ids["error"]})
        elif "ok" in r:
            entry["error"] = "apply_chat_template returned %s: %r" % (type(r["ok"]).__name__, r["ok"])
        else:
            entry["error"] = r["error"]
        rec["chat"].append(entry)
    for tname, tpl in templates:
        for chat in chats:
            kwargs = dict(chat["kwargs"])
            r = safe(lambda: hf.apply_chat_template(chat["messages"], chat_template=tpl, tokenize=False,
                                                    add_generation_prompt=chat["add_generation_prompt"], **kwargs))
            entry = {"template": tname, "name": chat["name"]}
            entry.update({"text": r["ok"]} if "ok" in r and isinstance(r["ok"], str) else {"error": r.get("error", repr(r.get("ok")))})
            rec["templates"].append(entry)
    return rec


def cmd_goldens(args):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import tokenizers
    import transformers
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    corpus, chats = load_corpus(), load_chats()
    templates = [(p.stem, p.read_text(encoding="utf-8")) for p in sorted((FIXTURES / "templates").glob("*.jinja"))]
    versions = {"tokenizers": tokenizers.__version__, "transformers": transformers.__version__,
                "python": sys.version.split()[0]}
    print("versions", versions, flush=True)
    for name in REAL_TOKENIZERS:
        d = Path(args.tokenizers) / name
        t0 = time.time()
        tk = tokenizers.Tokenizer.from_file(str(d / "tokenizer.json"))
        try:
            hf = transformers.AutoTokenizer.from_pretrained(str(d))
        except Exception as e:
            print("transformers could not load %s: %s" % (name, e), flush=True)
            hf = None
        rec = golden_for(name, tk, hf, corpus, chats, templates if name == "llama3" else [])
        rec["versions"] = versions
        rec["source"] = (d / "SOURCE").read_text().strip() if (d / "SOURCE").exists() else "unknown"
        rec["transformers_class"] = type(hf).__name__ if hf is not None else None
        (out / ("%s.json" % name)).write_text(json.dumps(rec, ensure_ascii=False) + "\n", encoding="utf-8")
        print("%s: %d cases, %d chats in %.1fs" % (name, len(rec["cases"]), len(rec["chat"]), time.time() - t0), flush=True)
    synth = {}
    for d in sorted((FIXTURES / "synthetic").iterdir()):
        r = safe(lambda: golden_for(d.name, tokenizers.Tokenizer.from_file(str(d / "tokenizer.json")), None, corpus, [], []))
        synth[d.name] = r["ok"] if "ok" in r else {"error": r["error"]}
        print("synthetic %s: %s" % (d.name, "ok" if "ok" in r else r["error"]), flush=True)
    synth["versions"] = versions
    (out / "synthetic.json").write_text(json.dumps(synth, ensure_ascii=False) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------ bench ----
def cmd_bench(args):
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ.setdefault("RAYON_NUM_THREADS", "1")
    import tokenizers
    docs = [json.loads(l)["text"] for l in jsonl_lines(args.docs)]
    total_bytes = sum(len(d.encode("utf-8")) for d in docs)
    results = {"tokenizers": tokenizers.__version__, "docs": len(docs), "bytes": total_bytes, "runs": []}
    for name in args.names.split(","):
        tk = tokenizers.Tokenizer.from_file(str(Path(args.tokenizers) / name / "tokenizer.json"))
        best, ntok = None, 0
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            n = 0
            for d in docs:
                n += len(tk.encode(d, add_special_tokens=True).ids)
            dt = time.perf_counter() - t0
            best = dt if best is None else min(best, dt)
            ntok = n
        results["runs"].append({"tokenizer": name, "seconds": best, "tokens": ntok,
                                "MB_per_s": total_bytes / best / 1e6, "tokens_per_s": ntok / best})
        print("hf %s: %.3f s, %.2f MB/s, %.0f tokens/s" % (name, best, total_bytes / best / 1e6, ntok / best), flush=True)
    text = json.dumps(results, indent=1)
    if args.json_out:
        Path(args.json_out).write_text(text + "\n")
    print(text)


# ----------------------------------------------------------------------------- render ----
def cmd_render(args):
    """Renders like transformers' apply_chat_template (same Jinja environment settings)."""
    import datetime
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.datetime.now().strftime(fmt)
    tpl = env.from_string(Path(args.template).read_text(encoding="utf-8"))
    for chat in load_chats():
        if args.only and chat["name"] != args.only:
            continue
        ctx = dict(messages=chat["messages"], tools=chat["kwargs"].get("tools"), documents=None,
                   add_generation_prompt=chat["add_generation_prompt"], bos_token="<s>", eos_token="</s>")
        ctx.update({k: v for k, v in chat["kwargs"].items() if k != "tools"})
        try:
            print("=== %s\n%s" % (chat["name"], tpl.render(**ctx)))
        except Exception as e:
            print("=== %s\nERROR %s: %s" % (chat["name"], type(e).__name__, e))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("inputs")
    a.add_argument("--random-count", type=int, default=300)
    g = sub.add_parser("goldens")
    g.add_argument("--tokenizers", default=str(ROOT / ".cache" / "tokenizers"))
    g.add_argument("--out", default=str(FIXTURES / "goldens"))
    b = sub.add_parser("bench")
    b.add_argument("--tokenizers", default=str(ROOT / ".cache" / "tokenizers"))
    b.add_argument("--docs", default=str(ROOT / ".cache" / "bench" / "tokenizer_docs.jsonl"))
    b.add_argument("--names", default=",".join(REAL_TOKENIZERS))
    b.add_argument("--repeat", type=int, default=3)
    b.add_argument("--json-out", default="")
    r = sub.add_parser("render")
    r.add_argument("template")
    r.add_argument("--only", default="")
    args = p.parse_args()
    {"inputs": cmd_inputs, "goldens": cmd_goldens, "bench": cmd_bench, "render": cmd_render}[args.cmd](args)


if __name__ == "__main__":
    main()
