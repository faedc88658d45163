#!/usr/bin/env python3
"""Runs the shell blocks of a Markdown file that are marked for testing.

A block is tested when the line before its fence (blank lines aside) is

    <!-- test -->            the commands run as written, from a scratch checkout
    <!-- test: server -->    the same, with the demo deployment serving: every
                             `localhost:8000` / `127.0.0.1:8000` / `--port 8000`
                             points at it, and
                             curl fails on an HTTP error (--fail-with-body)

    <!-- test: error -->     the block must fail (exit non-zero), and each line of
                             the ```text block right after it must appear in its
                             output (`…` matches anything): error messages quoted in
                             the docs are the program's real wording
    <!-- test: server error -->  both

and the fence is ```sh or ```bash. A shell block that cannot run in CI (GPU, docker,
systemd, a server that runs until stopped, a long benchmark) says why instead:

    <!-- no test: needs a GPU -->

and a shell block with neither mark fails the test, so no command goes unchecked by
oversight. `build/bin` is first on PATH, so `banyan` is the build under test.

The scratch checkout is a fresh directory per Markdown file where every top-level
entry of the source tree is a symlink, except `examples/`, `configs/` and `deploy/`,
which are copied (blocks build and `npm install` in them), `build`, which is the
build under test, and the git-ignored caches (`.cache`, `.deps`), which start empty. So `build/bin/banyan`, `models/demo` and `examples/gpt2` mean what
the docs say, and nothing is written into the source tree. The blocks of one file run
in order, each in its own `bash -euo pipefail`; files they write stay for the next.

    run_doc_commands.py --source SRC --build BUILD FILE.md [--list]

Exit status: 0 when every marked block passed, 1 on the first failure (its command,
output and exit code are printed), 77 (skipped) when models/demo is absent.
"""
import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

MARK = re.compile(r"^<!--\s*test(?::\s*([\w ]+?))?\s*-->\s*$")
NO_TEST = re.compile(r"^<!--\s*no test:\s*\S.*-->\s*$")
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
COPIED = {"examples", "configs", "deploy"}
SKIPPED = re.compile(r"^(\.git|\.cache|\.deps|build.*|node_modules)$")


def blocks(path):
    """Yields (line number, mode, text) of every marked block; raises on a mark
    followed by something else than a sh/bash fence, and on an unmarked sh/bash block."""
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    prev = ""  # the last non-blank line outside code blocks
    while i < len(lines):
        f = FENCE.match(lines[i])
        if f:  # a fence not claimed by a test mark: skip its block
            if f.group(2) in ("sh", "bash") and not NO_TEST.match(prev.strip()):
                raise SystemExit(f"{path}:{i + 1}: a shell block needs <!-- test -->, "
                                 "<!-- test: server --> or <!-- no test: REASON --> before it")
            i += 1
            while i < len(lines) and not FENCE.match(lines[i]):
                i += 1
            prev = ""
            i += 1
            continue
        m = MARK.match(lines[i].strip())
        if lines[i].strip():
            prev = lines[i]
        if not m:
            i += 1
            continue
        mode = set((m.group(1) or "").split())
        if not mode <= {"server", "error"}:
            raise SystemExit(f"{path}:{i + 1}: unknown test mark '{m.group(1)}' "
                             "(test, test: server, test: error, test: server error)")
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        f = FENCE.match(lines[j]) if j < len(lines) else None
        if not f or f.group(2) not in ("sh", "bash"):
            raise SystemExit(f"{path}:{i + 1}: a test mark must be followed by a ```sh block")
        indent = f.group(1)
        k = j + 1
        body = []
        while k < len(lines) and not FENCE.match(lines[k]):
            body.append(lines[k][len(indent):] if lines[k].startswith(indent) else lines[k])
            k += 1
        if k == len(lines):
            raise SystemExit(f"{path}:{j + 1}: unterminated code block")
        i = k + 1
        prev = ""
        expected = None
        if "error" in mode:
            e = i
            while e < len(lines) and not lines[e].strip():
                e += 1
            f = FENCE.match(lines[e]) if e < len(lines) else None
            if not f or f.group(2) != "text":
                raise SystemExit(f"{path}:{j + 1}: a 'test: error' block must be followed by a "
                                 "```text block holding the expected message")
            e += 1
            expected = []
            while e < len(lines) and not FENCE.match(lines[e]):
                if lines[e].strip():
                    expected.append(lines[e].strip())
                e += 1
            i = e + 1
        yield j + 1, mode, "\n".join(body) + "\n", expected


def scratch_checkout(source, build):
    root = tempfile.mkdtemp(prefix="banyan-docs-")
    for name in sorted(os.listdir(source)):
        if SKIPPED.match(name):
            continue
        src = os.path.join(source, name)
        dst = os.path.join(root, name)
        if name in COPIED and os.path.isdir(src):
            shutil.copytree(src, dst, symlinks=True,
                            ignore=shutil.ignore_patterns("node_modules", "build*"))
        else:
            os.symlink(src, dst)
    os.symlink(build, os.path.join(root, "build"))
    return root


class Server:
    """The demo deployment, started on a free port the first time a block needs it."""

    def __init__(self, root):
        self.root = root
        self.proc = None
        self.port = None

    def start(self):
        if self.proc:
            return
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = open(os.path.join(self.root, "server.log"), "w")
        self.proc = subprocess.Popen(
            ["build/bin/banyan", "serve", "--config", "configs/demo.yaml", "--port", str(self.port)],
            cwd=self.root, stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(600):
            if self.proc.poll() is not None:
                break
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2)
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise SystemExit("FAIL: the demo server did not come up:\n" +
                         open(os.path.join(self.root, "server.log")).read()[-3000:])

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None


SERVER_PRELUDE = 'curl() { command curl --fail-with-body "$@"; }\n'


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", required=True)
    ap.add_argument("--build", required=True)
    ap.add_argument("--list", action="store_true", help="print the marked blocks and exit")
    ap.add_argument("file")
    a = ap.parse_args()
    source = os.path.realpath(a.source)
    build = os.path.realpath(a.build)
    path = os.path.join(source, a.file) if not os.path.isabs(a.file) else a.file
    rel = os.path.relpath(path, source)
    found = list(blocks(path))
    if a.list:
        for line, mode, text, expected in found:
            print(f"--- {rel}:{line} ({' '.join(sorted(mode)) or 'plain'})\n{text}", end="")
            if expected:
                print("--- expects\n" + "\n".join(expected))
        return 0
    if not found:
        print(f"{rel}: no blocks marked for testing")
        return 0
    if not os.path.isfile(os.path.join(source, "models/demo/config.json")):
        print(f"SKIP {rel}: models/demo is absent (tools/train_demo.py makes it)")
        return 77
    root = scratch_checkout(source, build)
    server = Server(root)
    env = dict(os.environ)
    env.pop("BANYAN_API_KEY", None)
    env["PATH"] = os.path.join(root, "build", "bin") + os.pathsep + env.get("PATH", "")
    try:
        for line, mode, text, expected in found:
            first = next((l for l in text.split("\n") if l.strip() and not l.startswith("#")), "")[:70]
            if "server" in mode:
                server.start()
                text = re.sub(r"\b(localhost|127\.0\.0\.1):8000\b", f"127.0.0.1:{server.port}", text)
                text = SERVER_PRELUDE + re.sub(r"--port 8000\b", f"--port {server.port}", text)
            t0 = time.time()
            r = subprocess.run(["bash", "-euo", "pipefail", "-c", text], cwd=root, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=900)
            out = r.stdout.decode(errors="replace")
            problem = None
            if expected is None and r.returncode != 0:
                problem = f"exited {r.returncode}"
            elif expected is not None:
                missing = [e for e in expected if not re.search(
                    ".*".join(re.escape(part) for part in e.split("…")), out)]
                if r.returncode == 0:
                    problem = "succeeded, but the docs show it failing"
                elif missing:
                    problem = "printed another message than the docs show; missing:\n  " + \
                        "\n  ".join(missing)
            if problem:
                print(f"FAIL {rel}:{line} {problem}\n--- block\n{text}--- output (tail)\n"
                      f"{out[-4000:]}")
                if "server" in mode:
                    server.stop()
                    print("--- server log (tail)\n" +
                          open(os.path.join(root, "server.log")).read()[-2000:])
                return 1
            print(f"ok   {rel}:{line} ({time.time() - t0:.1f} s) {first}")
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(f"ok   {rel}: {len(found)} blocks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
