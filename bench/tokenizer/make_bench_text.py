#!/usr/bin/env python3
"""Writes the documents the tokenizer encode benchmark runs over (ours and Hugging Face's):
.cache/bench/tokenizer_docs.jsonl, one {"text": ...} per line, about 1 MB of English prose
from the Debian `fortunes` package cut into documents of about 2 KB, followed by the
multilingual test corpus (tests/fixtures/tokenizer/corpus_*.jsonl) grouped into documents.
Deterministic; the file is git-ignored and travels to the GPU machine in `carry`."""
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORTUNES = Path("/usr/share/games/fortunes")
OUT = ROOT / ".cache" / "bench" / "tokenizer_docs.jsonl"
DOC_BYTES = 2048
ENGLISH_BYTES = 1_000_000


def jsonl_texts(path):
    return [json.loads(l)["text"] for l in path.read_text(encoding="utf-8").split("\n") if l.strip()]


def group(pieces, limit):
    docs, cur = [], ""
    for p in pieces:
        if cur and len((cur + p).encode("utf-8")) > limit:
            docs.append(cur)
            cur = ""
        cur += p
    if cur:
        docs.append(cur)
    return docs


def main():
    pieces, total = [], 0
    for f in sorted(FORTUNES.iterdir()):
        if f.suffix or not f.is_file():
            continue
        for entry in f.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            pieces.append(entry.strip("%\n") + "\n\n")
            total += len(pieces[-1].encode("utf-8"))
        if total >= ENGLISH_BYTES:
            break
    docs = group(pieces, DOC_BYTES)
    fixtures = ROOT / "tests" / "fixtures" / "tokenizer"
    multi = jsonl_texts(fixtures / "corpus_manual.jsonl") + jsonl_texts(fixtures / "corpus_random.jsonl")
    docs += group([t + "\n" for t in multi], DOC_BYTES)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as out:
        for d in docs:
            out.write(json.dumps({"text": d}, ensure_ascii=False) + "\n")
    size = sum(len(d.encode("utf-8")) for d in docs)
    print("wrote %s: %d documents, %d bytes" % (OUT, len(docs), size))


if __name__ == "__main__":
    main()
