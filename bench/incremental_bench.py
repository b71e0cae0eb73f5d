#!/usr/bin/env python
"""Benchmark: what a 1% addition costs, against the full run it follows (the baseline, same process).

A corpus of --records web-text records (JSONL files of --per-file records each),
made from ../shared/data/corpus (c4_demo.jsonl, wiki_demo.txt, dj-demo-dedup.jsonl)
by rewording most words of each source text, so records are distinct. The default
recipe's parse, chunk, clean, filter and dedup run through Step.execute, as the
flow runs them (without Prefect's orchestration): first on an empty store, then
again after adding 1% more records as one new file. Prints each step's wall
time in both runs and the ratio; the target is an incremental run of at most
5% of the full run's step time.

With --llm, synthesize runs too (the qa strategy on every chunk, through the
openai backend) against a local OpenAI-compatible server that answers each
request after --llm-latency seconds (tests/faulty_server.py with no faults)
and counts requests: the target is at most 1% more requests for 1% more
records, and the +1% run at most 5% of the full run.

  .venv/bin/python bench/incremental_bench.py --records 10000
  .venv/bin/python bench/incremental_bench.py --records 2000 --llm
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "corpus"  # ../shared/data/corpus from the repo root
STEPS = ("parse", "chunk", "clean", "filter", "dedup")
INPUTS = {"chunk": {"documents": "parse"}, "clean": {"chunks": "chunk"}, "filter": {"chunks": "clean"},
          "dedup": {"chunks": "filter"}, "synthesize": {"chunks": "dedup", "documents": "parse"}}


def source_texts(corpus: Path) -> list[str]:
    docs = []
    for name in ("c4_demo.jsonl", "dj-demo-dedup.jsonl"):
        with open(corpus / name, encoding="utf-8") as fh:
            docs += [json.loads(line)["text"] for line in fh if line.strip()]
    with open(corpus / "wiki_demo.txt", encoding="utf-8") as fh:
        paras = [p for p in fh.read().split("\n") if p.strip()]
    docs += [p[i : i + 3000] for p in paras for i in range(0, len(p), 3000)]
    return docs


def records(sources: list[str], n: int, seed: int) -> list[dict]:
    """n distinct records: a source text with ~60% of its words replaced by words of the corpus."""
    rng = random.Random(seed)
    vocab = sorted({w for t in sources[:500] for w in t.split() if w.isalpha()})
    out = []
    for i in range(n):
        words = rng.choice(sources).split(" ")
        words = [rng.choice(vocab) if rng.random() < 0.6 else w for w in words]
        out.append({"id": f"{seed}-{i:07d}", "url": f"https://example.org/{seed}/{i}", "text": " ".join(words)})
    return out


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


def run_steps(recipe_path: Path, steps: tuple[str, ...] = STEPS) -> dict[str, dict]:
    from infuse.flows import steps as _registered  # noqa: F401  (registers the steps)
    from infuse.flows.recipe import load_recipe
    from infuse.storage import ArtifactRef, ArtifactStore
    from infuse.tasks.framework.step import StepContext, get_step

    recipe = load_recipe(recipe_path)
    store = ArtifactStore(recipe.storage)
    done: dict[str, dict] = {}
    for name in steps:
        step = get_step(name)()
        cfg = step.config(recipe)
        inputs = {art: done[producer]["outputs"][art] for art, producer in INPUTS.get(name, {}).items()}
        t = time.perf_counter()
        key = step.cache_key(cfg, inputs)
        ctx = StepContext(step, key, store, cfg, {n: ArtifactRef.from_dict(r) for n, r in inputs.items()})
        done[name] = step.execute(ctx).to_dict()
        done[name]["bench_s"] = round(time.perf_counter() - t, 2)  # the step and its cache key, as a flow pays it
    return done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="default ../shared/data/corpus")
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--per-file", type=int, default=500)
    ap.add_argument("--added", type=float, default=0.01, help="share of records added for the second run")
    ap.add_argument("--work", type=Path, default=Path("/tmp/infuse_incremental_bench"))
    ap.add_argument("--llm", action="store_true", help="also run synthesize against a local counting server")
    ap.add_argument("--llm-latency", type=float, default=0.05, help="seconds the server takes per request")
    a = ap.parse_args()
    steps = STEPS + (("synthesize",) if a.llm else ())
    server = None
    if a.llm:
        sys.path.insert(0, str(ROOT / "tests"))
        from faulty_server import FaultyServer

        def reply(body: dict) -> str:
            user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
            return json.dumps({"qa": [{"question": "What does the passage say?", "answer": user[-200:]}]})

        server = FaultyServer(fail_rate=0.0, content_fn=reply, latency_s=a.llm_latency).start()

    shutil.rmtree(a.work, ignore_errors=True)
    docs = a.work / "docs"
    docs.mkdir(parents=True)
    sources = source_texts(a.corpus)
    base = records(sources, a.records, seed=1)
    for k in range(0, len(base), a.per_file):
        write_jsonl(docs / f"part{k // a.per_file:04d}.jsonl", base[k : k + a.per_file])
    recipe = a.work / "recipe.yaml"
    spec: dict = {"name": "bench", "input": str(docs), "storage": str(a.work / "runs")}
    if server is not None:
        spec["steps"] = {"synthesize": {
            "llm": {"backend": "openai", "base_url": server.base_url, "model": "bench", "concurrency": 32,
                    "max_retries": 0},
            "by_format": {"default": ["qa"], "jsonl": ["qa"]},
            "paraphrase": {"enabled": False}}}
    recipe.write_text(json.dumps(spec))

    full = run_steps(recipe, steps)
    req_full = len(server.log) if server else 0
    added = records(sources, max(1, int(a.records * a.added)), seed=2)
    write_jsonl(docs / "added.jsonl", added)
    inc = run_steps(recipe, steps)
    req_inc = len(server.log) - req_full if server else 0
    if server is not None:
        server.stop()

    print(f"corpus: {a.records} records in {len(base) // a.per_file} files -> "
          f"{full['chunk']['outputs']['chunks']['rows']} chunks; added {len(added)} records "
          f"({inc['chunk']['outputs']['chunks']['rows'] - full['chunk']['outputs']['chunks']['rows']} chunks)")
    print(f"{'step':8s} {'full s':>8s} {'+1% s':>8s} {'ratio':>7s}  reuse in the +1% run")
    tot_full = tot_inc = 0.0
    for s in steps:
        f, i = full[s]["bench_s"], inc[s]["bench_s"]
        tot_full, tot_inc = tot_full + f, tot_inc + i
        st = inc[s]["stats"]
        reuse = (f"{st['files_parsed']} file(s) parsed, {st['files_from_cache']} cached" if s == "parse" else
                 f"signed {st['dedup']['signatures_computed']}, loaded {st['dedup']['signatures_loaded']}"
                 if s == "dedup" else f"{st['items_run']} items run, {st['items_from_memo']} from the item memo"
                 if s == "synthesize" else f"computed {st['memo_misses']}, memo {st['memo_hits']}")
        print(f"{s:8s} {f:8.2f} {i:8.2f} {i / f:7.1%}  {reuse}")
    print(f"{'total':8s} {tot_full:8.2f} {tot_inc:8.2f} {tot_inc / tot_full:7.1%}  (target <= 5%)")
    if server is not None:
        print(f"LLM requests: full run {req_full}, +1% run {req_inc} ({req_inc / max(req_full, 1):.2%}; target <= "
              f"{len(added) / a.records:.0%}); server latency {a.llm_latency} s per request")
    print("RESULT " + json.dumps({"records": a.records, "added": len(added), "full_s": round(tot_full, 2),
                                  "incremental_s": round(tot_inc, 2), "ratio": round(tot_inc / tot_full, 4),
                                  "llm_requests": [req_full, req_inc],
                                  "steps": {s: [full[s]["bench_s"], inc[s]["bench_s"]] for s in steps}}))


if __name__ == "__main__":
    main()
