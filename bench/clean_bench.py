#!/usr/bin/env python
"""Benchmark: infuse's clean + filter + dedup operators vs data-juicer's own `dj-process`.

Both sides run the same recipe (bench/dj_equivalent.yaml; infuse's configs are
built from it) on the same corpus, each in its own subprocess under
/usr/bin/time -v, so wall time and peak RSS are measured the same way.
The infuse side streams Parquet row groups exactly as the steps do: clean ->
stats -> fit -> apply -> dedup (add_batch, resolve, apply_batch).

Corpus: --corpus, by default ../shared/data/corpus beside the repo root (c4_demo.jsonl,
wiki_demo.txt, dj-demo-dedup.jsonl) cut into ~500-char chunks and scaled to --rows by copies with perturbations
(exact copies, case/space changes, a few edited words, heavily rewritten
copies, some junk), so that filters and dedup have real work.

Also runs infuse's default recipe (CleanConfig/FilterConfig/DedupConfig.default():
exact + SimHash + MinHash dedup) on the same corpus, times MinHash-LSH alone on
--minhash-docs synthetic documents, and semantic dedup (off by default): MiniLM
embedding throughput on --semantic-rows chunks of the corpus, and clustering and
within-cluster pairs on --semantic-synthetic synthetic embeddings (1M: the memory
bound).

  .venv/bin/python bench/clean_bench.py --rows 100000 --minhash-docs 1000000 \
      --semantic-rows 2000 --semantic-synthetic 1000000
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "corpus"  # ../shared/data/corpus from the repo root
YAML = ROOT / "bench" / "dj_equivalent.yaml"
PY = sys.executable
DJ_PROCESS = str(Path(PY).parent / "dj-process")

# -- corpus ------------------------------------------------------------------


def _split_chunks(text: str, size: int = 500) -> list[str]:
    sentences = re.split(r"(?<=[.!?。！？])\s*", text)
    out, cur = [], ""
    for s in sentences:
        if cur and len(cur) + len(s) > size:
            out.append(cur.strip())
            cur = ""
        cur += s + " "
    if cur.strip():
        out.append(cur.strip())
    return [c for c in out if c]


def base_chunks(corpus: Path) -> list[str]:
    docs = []
    for name in ("c4_demo.jsonl", "dj-demo-dedup.jsonl"):
        with open(corpus / name, encoding="utf-8") as fh:
            docs += [json.loads(line)["text"] for line in fh if line.strip()]
    with open(corpus / "wiki_demo.txt", encoding="utf-8") as fh:
        docs += [p for p in fh.read().split("\n") if p.strip()]
    chunks = []
    for d in docs:
        chunks += _split_chunks(d)
    return chunks


def _perturb(text: str, rng: random.Random, vocab: list[str]) -> str:
    p = rng.random()
    if p < 0.15:
        return text  # exact copy
    if p < 0.30:
        return text.upper() if rng.random() < 0.5 else "  " + text.replace(" ", "  ", 3)  # exact after normalising
    words = text.split(" ")
    if p < 0.50:  # near duplicate: a few words changed
        for _ in range(rng.randint(1, 3)):
            words[rng.randrange(len(words))] = rng.choice(vocab)
        return " ".join(words)
    if p < 0.52:  # junk for the filters
        return rng.choice(["#" * rng.randint(20, 200), "ab " * rng.randint(50, 150), "!?" * 50, "x"])
    for i in range(len(words)):  # a different text: most words replaced
        if rng.random() < 0.6:
            words[i] = rng.choice(vocab)
    return " ".join(words)


def build_corpus(rows: int, work: Path, row_group: int, corpus: Path) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    base = base_chunks(corpus)
    vocab = sorted({w for c in base[:2000] for w in c.split(" ") if w.isalpha()})
    rng = random.Random(0)
    texts = list(base[:rows])
    while len(texts) < rows:
        texts.append(_perturb(rng.choice(base), rng, vocab))
    ids = [f"{i:08d}" for i in range(rows)]
    table = pa.table({
        "chunk_id": ids,
        "doc_id": [f"doc{i // 8}" for i in range(rows)],
        "path": ["bench.txt"] * rows,
        "format": ["txt"] * rows,
        "chunk_index": pa.array([i % 8 for i in range(rows)], pa.int32()),
        "text": texts,
        "kind": ["text"] * rows,
    })
    pq.write_table(table, work / "corpus.parquet", row_group_size=row_group)
    with open(work / "corpus.jsonl", "w", encoding="utf-8") as fh:
        for cid, t in zip(ids, texts):
            fh.write(json.dumps({"chunk_id": cid, "text": t}, ensure_ascii=False) + "\n")
    return {"rows": rows, "base_chunks": len(base), "chars": sum(map(len, texts))}


# -- infuse configs from the dj recipe ------------------------------------------

SAFE_MAPPER = {
    "clean_links_mapper": "infuse_clean_links",
    "fix_unicode_mapper": "infuse_fix_unicode",
    "punctuation_normalization_mapper": "infuse_punctuation_normalization",
    "whitespace_normalization_mapper": "infuse_whitespace_normalization",
    "clean_copyright_mapper": "infuse_clean_copyright",
}
JIEBA_FILTER = {"words_num_filter": ("infuse_words_num", "min_num", "max_num"),
                "word_repetition_filter": ("infuse_word_repetition", "min_ratio", "max_ratio")}


def infuse_configs(path: Path):
    """CleanConfig, FilterConfig, DedupConfig equivalent to a dj recipe (safe mappers, jieba word stats)."""
    import yaml

    from infuse.operators.clean import CleanConfig
    from infuse.operators.dedup import DedupConfig, SimhashConfig
    from infuse.operators.filter import FilterConfig

    recipe = yaml.safe_load(path.read_text())
    clean, filt = [], []
    exact, simhash = False, None
    for item in recipe["process"]:
        (name, params), = item.items()
        params = dict(params or {})
        if name.endswith("_mapper"):
            clean.append({"name": SAFE_MAPPER.get(name, name), "params": {} if name in SAFE_MAPPER else params})
        elif name in JIEBA_FILTER:
            ours, lo, hi = JIEBA_FILTER[name]
            spec = {"name": ours, "min": params.get(lo), "max": params.get(hi)}
            if "rep_len" in params:
                spec["params"] = {"rep_len": params["rep_len"]}
            filt.append(spec)
        elif name.endswith("_filter"):
            filt.append({"name": name, "params": params})
        elif name == "document_deduplicator":
            exact = True
        elif name == "document_simhash_deduplicator":
            simhash = SimhashConfig(**{k: v for k, v in params.items() if k != "tokenization"})
    return (CleanConfig(ops=clean), FilterConfig(ops=filt),
            DedupConfig(exact=exact, simhash=simhash, minhash=None, keep="earliest"))


# -- sides -------------------------------------------------------------------------


def default_configs():
    """infuse's default recipe: what a user gets without a clean/filter/dedup section."""
    from infuse.operators.clean import CleanConfig
    from infuse.operators.dedup import DedupConfig
    from infuse.operators.filter import FilterConfig

    return CleanConfig.default(), FilterConfig.default(), DedupConfig.default()


def side_infuse(work: Path, batch: int, recipe: str = "dj") -> dict:
    import pyarrow.parquet as pq

    from infuse.operators.clean import Cleaner
    from infuse.operators.dedup import Deduper
    from infuse.operators.filter import QualityFilter

    t0 = time.perf_counter()
    ccfg, fcfg, dcfg = infuse_configs(YAML) if recipe == "dj" else default_configs()
    cleaner, quality, deduper = Cleaner(ccfg), QualityFilter(fcfg), Deduper(dcfg)
    t_init = time.perf_counter() - t0
    times, rejects = {}, {}

    def count(rs):
        for r in rs:
            rejects[r.reason] = rejects.get(r.reason, 0) + 1

    def stream(src: Path, dst: Path | None, fn, columns=None):
        f = pq.ParquetFile(src)
        writer = None
        for i in range(f.num_row_groups):
            out = fn(f.read_row_group(i, columns=columns))
            if dst is not None and out is not None:
                if writer is None:
                    writer = pq.ParquetWriter(dst, out.schema)
                writer.write_table(out, row_group_size=batch)
        if writer is not None:
            writer.close()

    def timed(name, f):
        t = time.perf_counter()
        f()
        times[name] = round(time.perf_counter() - t, 2)

    def clean(tb):
        out, rs = cleaner.process_batch(tb)
        count(rs)
        return out

    def apply_filter(tb):
        out, rs = quality.apply_batch(tb, bounds)
        count(rs)
        return out

    timed("clean", lambda: stream(work / "corpus.parquet", work / "clean.parquet", clean))
    timed("filter_stats", lambda: stream(work / "clean.parquet", work / "stats.parquet", quality.stats_batch))
    t = time.perf_counter()
    bounds = quality.fit(pq.read_table(work / "stats.parquet", columns=quality.stat_columns))
    times["filter_fit"] = round(time.perf_counter() - t, 2)
    timed("filter_apply", lambda: stream(work / "stats.parquet", work / "filtered.parquet", apply_filter))
    timed("dedup_sign", lambda: stream(work / "filtered.parquet", None,
                                       lambda tb: deduper.add_batch(tb), columns=["chunk_id", "text"]))
    t = time.perf_counter()
    _, rs = deduper.resolve()
    count(rs)
    times["dedup_resolve"] = round(time.perf_counter() - t, 2)
    timed("dedup_apply", lambda: stream(work / "filtered.parquet", work / "dedup.parquet", deduper.apply_batch))
    pq.write_table(deduper.index(), work / f"dedup_index_{recipe}.parquet")
    kept = pq.ParquetFile(work / "dedup.parquet").metadata.num_rows
    return {"init_s": round(t_init, 2), "step_s": times, "kept": kept, "rejected": rejects,
            "self_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def side_minhash(n: int, batch: int, num_perm: int) -> dict:
    """MinHash-LSH only, on n synthetic ~60-word documents (10% near-duplicates of earlier ones)."""
    import numpy as np
    import pyarrow as pa

    from infuse.operators.dedup import DedupConfig, Deduper, MinhashConfig

    rng = np.random.default_rng(0)
    vocab = np.array([f"w{i}" for i in range(50_000)])
    d = Deduper(DedupConfig(exact=False, simhash=None, minhash=MinhashConfig(num_perm=num_perm), keep="earliest"))
    t_gen = t_sign = 0.0
    made = 0
    prev = None
    while made < n:
        m = min(batch, n - made)
        t = time.perf_counter()
        words = vocab[rng.integers(0, len(vocab), size=(m, 60))]
        if prev is not None:  # 10% near copies of the previous batch: 2 words changed
            k = m // 10
            src = prev[rng.integers(0, len(prev), size=k)].copy()
            src[np.arange(k), rng.integers(0, 60, size=k)] = vocab[rng.integers(0, len(vocab), size=k)]
            src[np.arange(k), rng.integers(0, 60, size=k)] = vocab[rng.integers(0, len(vocab), size=k)]
            words[:k] = src
        texts = [" ".join(row) for row in words]
        table = pa.table({"chunk_id": [f"{made + i:09d}" for i in range(m)], "text": texts})
        prev = words
        t_gen += time.perf_counter() - t
        t = time.perf_counter()
        d.add_batch(table)
        t_sign += time.perf_counter() - t
        made += m
    t = time.perf_counter()
    keep, rejects = d.resolve()
    t_resolve = time.perf_counter() - t
    return {"docs": n, "num_perm": num_perm, "bands_rows": [d.bands, d.rows], "gen_s": round(t_gen, 1),
            "sign_s": round(t_sign, 1), "resolve_s": round(t_resolve, 1), "kept": len(keep),
            "rejected": len(rejects), "docs_per_s": round(n / (t_sign + t_resolve)),
            "self_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def side_semantic(work: Path, rows: int, synthetic: int) -> dict:
    """MiniLM embedding on `rows` real chunks; k-means + within-cluster pairs on `synthetic` embeddings."""
    import numpy as np
    import pyarrow.parquet as pq

    from infuse.operators.dedup import semantic

    out: dict = {}
    if rows:
        texts = pq.read_table(work / "corpus.parquet", columns=["text"]).column("text").to_pylist()[:rows]
        semantic.embed(texts[:8])  # model load, not throughput
        t = time.perf_counter()
        emb = semantic.embed(texts)
        wall = time.perf_counter() - t
        a, _ = semantic.near_pairs(emb, 0.8, max(1, len(texts) // 1000))
        out["embed"] = {"chunks": len(texts), "embed_s": round(wall, 1), "chunks_per_s": round(len(texts) / wall, 1),
                        "pairs_at_0.8": int(len(a))}
    if synthetic:
        rng = np.random.default_rng(0)
        t = time.perf_counter()
        x = np.empty((synthetic, semantic_dim()), np.float16)
        for i in range(0, synthetic, 100_000):  # 10% near copies of earlier rows, in blocks to bound memory
            block = rng.normal(size=(min(100_000, synthetic - i), semantic_dim())).astype(np.float32)
            k = len(block) // 10
            block[:k] = block[-k:] + 0.1 * rng.normal(size=(k, semantic_dim()))
            x[i : i + len(block)] = (block / np.linalg.norm(block, axis=1, keepdims=True)).astype(np.float16)
        t_gen = time.perf_counter() - t
        t = time.perf_counter()
        a, _ = semantic.near_pairs(x, 0.8, synthetic // 1000)
        wall = time.perf_counter() - t
        out["cluster"] = {"embeddings": synthetic, "gen_s": round(t_gen, 1), "cluster_and_pairs_s": round(wall, 1),
                          "per_s": round(synthetic / wall), "pairs": int(len(a))}
    out["self_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def semantic_dim() -> int:
    from infuse.operators.dedup.deduper import EMBED_DIM

    return EMBED_DIM


# -- driver ------------------------------------------------------------------------


def timed_subprocess(cmd: list[str], log: Path) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MB of the largest process, return code) via /usr/bin/time -v."""
    tfile = log.with_suffix(".time")
    t = time.perf_counter()
    with open(log, "w") as fh:
        rc = subprocess.call(["/usr/bin/time", "-v", "-o", str(tfile), *cmd], stdout=fh, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", tfile.read_text())
    return wall, (int(m.group(1)) / 1024 if m else float("nan")), rc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS,
                    help="folder with c4_demo.jsonl, wiki_demo.txt, dj-demo-dedup.jsonl (default ../shared/data/corpus)")
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--minhash-docs", type=int, default=0)
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--batch", type=int, default=5000, help="Parquet row-group / batch size")
    ap.add_argument("--np", type=int, default=2, help="dj-process --np")
    ap.add_argument("--work", type=Path, default=Path("/tmp/infuse_clean_bench"))
    ap.add_argument("--skip-dj", action="store_true")
    ap.add_argument("--skip-default", action="store_true", help="do not run infuse's default recipe")
    ap.add_argument("--semantic-rows", type=int, default=0, help="chunks to embed for semantic dedup throughput")
    ap.add_argument("--semantic-synthetic", type=int, default=0,
                    help="synthetic embeddings to cluster and pair (1000000: the 1M-chunk memory bound)")
    ap.add_argument("--side", choices=["infuse", "infuse-default", "minhash", "semantic"], help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.side in ("infuse", "infuse-default"):
        print("RESULT " + json.dumps(side_infuse(a.work, a.batch, "dj" if a.side == "infuse" else "default")))
        return
    if a.side == "semantic":
        print("RESULT " + json.dumps(side_semantic(a.work, a.semantic_rows, a.semantic_synthetic)))
        return
    if a.side == "minhash":
        print("RESULT " + json.dumps(side_minhash(a.minhash_docs, 10_000, a.num_perm)))
        return

    report: dict = {}
    if a.rows:
        shutil.rmtree(a.work, ignore_errors=True)
        a.work.mkdir(parents=True)
        report["corpus"] = build_corpus(a.rows, a.work, a.batch, a.corpus)
        print(f"corpus: {report['corpus']}", flush=True)
        wall, rss, rc = timed_subprocess([PY, __file__, "--side", "infuse", "--work", str(a.work),
                                          "--batch", str(a.batch)], a.work / "infuse.log")
        res = _result(a.work / "infuse.log", rc)
        report["infuse"] = {"wall_s": round(wall, 1), "docs_per_s": round(a.rows / wall), "peak_rss_mb": round(rss), **res}
        print(f"infuse: {report['infuse']}", flush=True)
        if not a.skip_dj:
            out = a.work / "dj_out.jsonl"
            wall, rss, rc = timed_subprocess([DJ_PROCESS, "--config", str(YAML), "--dataset_path",
                                              str(a.work / "corpus.jsonl"), "--export_path", str(out),
                                              "--np", str(a.np)], a.work / "dj.log")
            kept = sum(1 for _ in open(out)) if out.exists() else None
            report["dj"] = {"wall_s": round(wall, 1), "docs_per_s": round(a.rows / wall), "peak_rss_mb": round(rss),
                            "np": a.np, "kept": kept, "rc": rc}
            print(f"dj-process: {report['dj']}", flush=True)
            report["speed_ratio_infuse_over_dj"] = round(report["dj"]["wall_s"] / report["infuse"]["wall_s"], 2)
            print(f"ratio (infuse docs/s / dj docs/s): {report['speed_ratio_infuse_over_dj']}")
        if not a.skip_default:  # what a user gets: the default recipe, MinHash included
            wall, rss, rc = timed_subprocess([PY, __file__, "--side", "infuse-default", "--work", str(a.work),
                                              "--batch", str(a.batch)], a.work / "infuse_default.log")
            res = _result(a.work / "infuse_default.log", rc)
            report["infuse_default"] = {"wall_s": round(wall, 1), "docs_per_s": round(a.rows / wall),
                                        "peak_rss_mb": round(rss), **res}
            print(f"infuse default recipe: {report['infuse_default']}", flush=True)
            if "dj" in report:
                report["speed_ratio_default_over_dj"] = round(report["dj"]["wall_s"] / wall, 2)
                print(f"ratio (infuse default recipe docs/s / dj docs/s): {report['speed_ratio_default_over_dj']}")
    if a.minhash_docs:
        a.work.mkdir(parents=True, exist_ok=True)
        wall, rss, rc = timed_subprocess([PY, __file__, "--side", "minhash", "--minhash-docs", str(a.minhash_docs),
                                          "--num-perm", str(a.num_perm)], a.work / "minhash.log")
        report["minhash"] = {"wall_s": round(wall, 1), "peak_rss_mb": round(rss), **_result(a.work / "minhash.log", rc)}
        print(f"minhash-lsh: {report['minhash']}", flush=True)
    if a.semantic_rows or a.semantic_synthetic:
        if a.semantic_rows and not (a.work / "corpus.parquet").exists():
            a.work.mkdir(parents=True, exist_ok=True)
            build_corpus(max(a.semantic_rows, 1000), a.work, a.batch, a.corpus)
        wall, rss, rc = timed_subprocess([PY, __file__, "--side", "semantic", "--work", str(a.work),
                                          "--semantic-rows", str(a.semantic_rows), "--semantic-synthetic",
                                          str(a.semantic_synthetic)], a.work / "semantic.log")
        report["semantic"] = {"wall_s": round(wall, 1), "peak_rss_mb": round(rss), **_result(a.work / "semantic.log", rc)}
        print(f"semantic dedup: {report['semantic']}", flush=True)
    print(json.dumps(report, indent=2))


def _result(log: Path, rc: int) -> dict:
    for line in log.read_text().splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": f"rc={rc}, see {log}", "tail": log.read_text()[-2000:]}


if __name__ == "__main__":
    main()
