"""dedup: exact, SimHash (data-juicer hashing) and MinHash-LSH (datasketch), keep rules, incremental index."""
from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from infuse.operators.dedup import DedupConfig, Deduper, MinhashConfig, SimhashConfig
from infuse.operators.dedup.minhash import MinhashSigner, hashfunc
from infuse.operators.dedup.text import normalize_exact, shingles

_rng = random.Random(7)
VOCAB = ["".join(_rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(_rng.randint(2, 9))) for _ in range(3000)]
HAN = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]


def en(seed: int, words: int) -> str:
    r = random.Random(seed)
    return " ".join(r.choice(VOCAB) for _ in range(words)) + "."


def zh(seed: int, chars: int) -> str:
    r = random.Random(seed)
    s = "".join(r.choice(HAN) for _ in range(chars))
    return "，".join(s[i : i + 20] for i in range(0, chars, 20)) + "。"


def edit(text: str, k: int, seed: int) -> str:
    """k single-character substitutions (a letter for a letter, a hanzi for a hanzi)."""
    r = random.Random(seed)
    t = list(text)
    for _ in range(k):
        i = r.randrange(len(t))
        while not t[i].isalpha():
            i = r.randrange(len(t))
        t[i] = "字" if "\u4e00" <= t[i] <= "\u9fff" else ("x" if t[i] != "x" else "y")
    return "".join(t)


def table(texts: list[str], prefix: str = "c") -> pa.Table:
    return pa.table({"chunk_id": [f"{prefix}{i}" for i in range(len(texts))], "text": texts})


def run(cfg: DedupConfig, t: pa.Table, index: pa.Table | None = None) -> tuple[Deduper, set[str], list]:
    d = Deduper(cfg, index)
    for b in t.to_batches(max_chunksize=3):
        d.add_batch(pa.Table.from_batches([b]))
    keep, rejects = d.resolve()
    return d, keep, rejects


EXACT_ONLY = DedupConfig(exact=True, simhash=None, minhash=None)


def test_exact_normalisation():
    assert normalize_exact("Ｈｅｌｌｏ,  WORLD!\n") == normalize_exact("hello world") == "hello world"
    assert normalize_exact("你好，世界。") == normalize_exact("你好 世界") == "你好 世界"


def test_exact_keep_longest_and_earliest():
    texts = ["Hello world", "hello,   WORLD!!", "something else", "你好，世界。", "你好 世界"]
    _, keep, rejects = run(EXACT_ONLY, table(texts))
    assert keep == {"c1", "c2", "c3"}  # longest raw text wins each cluster
    assert sorted((r.id, r.reason, r.detail["kept_id"], r.detail["cluster"]) for r in rejects) == [
        ("c0", "exact_duplicate", "c1", "exact:c1"), ("c4", "exact_duplicate", "c3", "exact:c3")]
    _, keep, _ = run(EXACT_ONLY.model_copy(update={"keep": "earliest"}), table(texts))
    assert keep == {"c0", "c2", "c3"}


def test_simhash_finds_planted_near_duplicates_and_keeps_different_texts():
    # SimHash over 64 bits with distance <= 4 only catches near-verbatim copies: 1 edit in ~800 words / 2000 hanzi.
    base = [en(1, 800), en(2, 800), zh(3, 2000), zh(4, 2000)]
    texts = base + [edit(base[0], 1, 10), edit(base[2], 1, 11), en(5, 800), zh(6, 2000)]
    cfg = DedupConfig(exact=False, simhash=SimhashConfig(), keep="earliest")
    _, keep, rejects = run(cfg, table(texts))
    assert sorted((r.id, r.reason, r.detail["kept_id"]) for r in rejects) == [
        ("c4", "near_duplicate_simhash", "c0"), ("c5", "near_duplicate_simhash", "c2")]
    assert all(r.detail["hamming_distance"] <= 4 for r in rejects)
    assert keep == {"c0", "c1", "c2", "c3", "c6", "c7"}


def test_short_texts_have_no_simhash_and_are_not_clustered():
    # fewer tokens than the window: data-juicer's hash is 0 for all of them, which would cluster them all
    cfg = DedupConfig(exact=False, simhash=SimhashConfig(), keep="earliest")
    _, keep, rejects = run(cfg, table(["one two", "three four five", "six"]))
    assert rejects == [] and keep == {"c0", "c1", "c2"}


def test_minhash_finds_planted_near_duplicates_including_chinese():
    base = [en(1, 120), en(2, 120), zh(3, 300), zh(4, 300)]
    texts = base + [edit(base[0], 2, 10), edit(base[2], 3, 11), en(5, 120), zh(6, 300)]
    cfg = DedupConfig(exact=False, simhash=None, minhash=MinhashConfig(num_perm=128, threshold=0.7), keep="earliest")
    d, keep, rejects = run(cfg, table(texts))
    assert sorted((r.id, r.reason, r.detail["kept_id"], r.detail["cluster"]) for r in rejects) == [
        ("c4", "near_duplicate_minhash", "c0", "minhash:c0"), ("c5", "near_duplicate_minhash", "c2", "minhash:c2")]
    assert all(r.detail["jaccard"] >= 0.7 for r in rejects)
    assert keep == {"c0", "c1", "c2", "c3", "c6", "c7"}
    assert d.stats()["clusters"]["minhash"] == 2


def test_keep_longest_picks_the_longest_member():
    a = en(1, 120)
    texts = [a, a + " extra tail words here", en(2, 120)]
    cfg = DedupConfig(exact=False, simhash=None, minhash=MinhashConfig(num_perm=128), keep="longest")
    _, keep, rejects = run(cfg, table(texts))
    assert keep == {"c1", "c2"}
    assert [(r.id, r.detail["kept_id"]) for r in rejects] == [("c0", "c1")]


def test_shingles_are_characters_for_chinese_and_words_for_english():
    assert shingles("你好世界呀", 2) != [] and set(shingles("你好世界", 2)) == {"你 好".encode(), "好 世".encode(), "世 界".encode()}
    assert set(shingles("The cat, the hat", 2)) == {b"the cat", b"cat the", b"the hat"}


def test_batch_signatures_equal_datasketch():
    from datasketch import MinHash

    docs = [shingles(en(i, 50), 5) for i in range(4)] + [shingles(zh(9, 80), 5), []]
    sig = MinhashSigner(64, seed=3).sign(docs)
    for d, row in zip(docs, sig):
        m = MinHash(num_perm=64, seed=3, hashfunc=hashfunc)
        m.update_batch(d)
        assert np.array_equal(m.hashvalues, row)


def test_incremental_run_does_not_resign_old_chunks(tmp_path):
    cfg = DedupConfig(exact=True, simhash=SimhashConfig(), minhash=MinhashConfig(num_perm=64), keep="longest")
    old = [en(i, 120) for i in range(6)]
    new = [edit(old[0], 2, 1), en(100, 120), zh(101, 300)]
    first, _, _ = run(cfg, table(old))
    assert first.stats()["signatures_computed"] == {"exact": 6, "simhash": 6, "minhash": 6, "semantic": 0}
    pq.write_table(first.index(), tmp_path / "index.parquet")  # persisted as the lead will
    index = pq.read_table(tmp_path / "index.parquet")
    assert index.num_rows == 6 and index.schema.field("minhash").type.list_size == 64

    everything = table(old + new)
    second, keep, rejects = run(cfg, everything, index)
    assert second.stats()["signatures_computed"] == {"exact": 3, "simhash": 3, "minhash": 3, "semantic": 0}
    assert second.stats()["signatures_loaded"] == {"exact": 6, "simhash": 6, "minhash": 6, "semantic": 0}
    fresh, keep_fresh, rejects_fresh = run(cfg, everything)
    assert keep == keep_fresh and [r.id for r in rejects] == [r.id for r in rejects_fresh] == ["c6"]
    assert second.index().num_rows == 9


def test_incremental_run_of_new_chunks_only_checks_them_against_kept_old_ones():
    cfg = DedupConfig(exact=True, simhash=None, minhash=MinhashConfig(num_perm=64), keep="longest")
    old = [en(i, 120) for i in range(4)]
    first, _, _ = run(cfg, table(old, "old"))
    new = table([old[1] + " and a longer tail", en(50, 120)], "new")
    second, keep, rejects = run(cfg, new, first.index())
    assert keep == {"new1"}  # an old chunk always wins, even against a longer new one
    assert [(r.id, r.reason, r.detail["kept_id"]) for r in rejects] == [("new0", "near_duplicate_minhash", "old1")]
    assert second.stats()["signatures_computed"]["minhash"] == 2


def test_index_with_other_params_is_not_reused():
    first, _, _ = run(DedupConfig(exact=False, simhash=None, minhash=MinhashConfig(num_perm=64, ngram=5)),
                      table([en(1, 60)]))
    second, _, _ = run(DedupConfig(exact=False, simhash=None, minhash=MinhashConfig(num_perm=64, ngram=3)),
                       table([en(1, 60)]), first.index())
    assert second.stats()["signatures_loaded"]["minhash"] == 0
    assert second.stats()["signatures_computed"]["minhash"] == 1


def test_apply_needs_resolve_and_a_resolved_deduper_is_done():
    d = Deduper(EXACT_ONLY)
    d.add_batch(table(["a", "a"]))
    with pytest.raises(RuntimeError):
        d.apply_batch(table(["a"]))
    d.resolve()
    assert d.apply_batch(table(["a", "a"])).column("chunk_id").to_pylist() == ["c0"]
    with pytest.raises(RuntimeError):
        d.add_batch(table(["b"]))  # a resolved Deduper is done; start a new one with its index()


def test_changed_text_under_the_same_chunk_id_is_signed_anew():
    """A stored signature is only reused for the same text (e.g. a new clean config changes it)."""
    import pyarrow as pa

    from infuse.operators.dedup import DedupConfig, Deduper
    from infuse.operators.dedup.config import MinhashConfig

    cfg = DedupConfig(exact=True, simhash=None, minhash=MinhashConfig(num_perm=64))
    texts = ["the quick brown fox jumps over the lazy dog " * 3, "an entirely different sentence about databases " * 3]
    first = pa.table({"chunk_id": ["a", "b"], "text": texts})
    d1 = Deduper(cfg)
    d1.add_batch(first)
    d1.resolve()
    index = d1.index()
    changed = pa.table({"chunk_id": ["a", "b"], "text": [texts[0], texts[1].upper() + " (edited)"]})
    d2 = Deduper(cfg, index=index)
    d2.add_batch(changed)
    d2.resolve()
    stats = d2.stats()
    assert stats["signatures_loaded"]["minhash"] == 1 and stats["signatures_computed"]["minhash"] == 1


def test_default_dedup_catches_a_readded_chinese_paragraph_with_new_title_and_one_added_sentence():
    """Issue: SimHash at distance 4 alone (the old default) caught 2 of 9 such copies; MinHash is now default."""
    import json
    from pathlib import Path

    items = json.loads((Path(__file__).parent / "data" / "zh_encyclopedia.json").read_text(encoding="utf-8"))
    originals = [f"{title}\n\n{body}" for title, body in items]
    added = ["这一点在近年的研究中得到了进一步的证实。", "相关内容在地方志中也有详细记载。"]
    copies = [f"{title}（百科）\n\n{body}{added[i % 2]}" for i, (title, body) in enumerate(items[:8])]
    t = table(originals + copies)
    _, _, simhash_only = run(DedupConfig(minhash=None), t)
    assert len(simhash_only) < 8, "the case SimHash alone misses"
    _, keep, rejects = run(DedupConfig(), t)
    pairs = {frozenset((r.id, r.detail["kept_id"])) for r in rejects}
    assert pairs == {frozenset((f"c{i}", f"c{10 + i}")) for i in range(8)}, "each copy pairs with its original"
    assert keep == {f"c{i}" for i in range(8, 18)}, "one per pair (the longer copy), and the 2 uncopied ones"


PARAPHRASES = [
    ("To back up LotusDB, stop all writers, copy the data directory to another disk, and keep the WAL files "
     "together with the SST files.",
     "Back up a LotusDB database by halting every writer, then copying its data folder to a second disk; the "
     "write-ahead log files must stay with the SST files."),
    ("The server must be restarted after you change the configuration file, otherwise the new settings are ignored.",
     "Any edit to the config file only takes effect once the server has been restarted; until then the old "
     "settings stay in force."),
]
UNRELATED = ["To restore LotusDB, stop the server and copy the backup into the data directory.",
             "The museum opens at nine and tickets are sold at the door; children under six go free.",
             "Read amplification is the number of disk reads needed for one logical read."]


def test_semantic_dedup_removes_paraphrases_that_minhash_misses():
    from infuse.operators.dedup import SemanticConfig

    zh_pair = ["莲花数据库在每次写入前先追加写前日志，然后更新内存表。", "每次写入时，莲花数据库会先写日志，再更新内存中的表。"]
    texts = [p[0] for p in PARAPHRASES] + UNRELATED + [p[1] for p in PARAPHRASES] + zh_pair
    t = table(texts)
    _, _, default_rejects = run(DedupConfig(), t)
    assert default_rejects == [], "exact, SimHash and MinHash see different words"
    d, keep, rejects = run(DedupConfig(semantic=SemanticConfig(), keep="earliest"), t)
    assert sorted((r.id, r.reason, r.detail["kept_id"]) for r in rejects) == [
        ("c5", "near_duplicate_semantic", "c0"), ("c6", "near_duplicate_semantic", "c1")]
    assert all(r.detail["cosine"] >= 0.8 for r in rejects) and "c2" in keep, "backup vs restore is not a copy"
    assert "c7" in keep and "c8" in keep, "Chinese is not embedded by the English model (langs: [en])"
    index = d.index()
    assert index.column("semantic").null_count == 2 and index.schema.field("semantic").type.list_size == 384
    again, keep2, rejects2 = run(DedupConfig(semantic=SemanticConfig(), keep="earliest"), t, index)
    assert again.stats()["signatures_computed"]["semantic"] == 0 and keep2 == keep
    assert [r.id for r in rejects2] == [r.id for r in rejects]


def test_semantic_pairs_stay_within_clusters_and_match_brute_force():
    from infuse.operators.dedup.semantic import near_pairs

    rng = np.random.default_rng(1)
    base = rng.normal(size=(300, 384)).astype(np.float32)
    x = np.concatenate([base, base[:40] + 0.05 * rng.normal(size=(40, 384))])
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)
    a, b = near_pairs(x, 0.9, k=1)
    sims = x.astype(np.float32) @ x.astype(np.float32).T
    brute = {(i, j) for i, j in zip(*np.nonzero(np.triu(sims >= 0.9, k=1)))}
    assert set(zip(a.tolist(), b.tolist())) == brute and len(brute) == 40
    a, b = near_pairs(x, 0.9, k=8)  # clustered: near copies land with their original
    assert set(zip(a.tolist(), b.tolist())) == brute


def test_stages_run_in_order_and_the_index_keeps_every_stage_column():
    from infuse.operators.dedup.stages import REASONS, STAGES

    assert STAGES == ("exact", "simhash", "minhash", "semantic")
    assert REASONS == {"exact": "exact_duplicate", "simhash": "near_duplicate_simhash",
                       "minhash": "near_duplicate_minhash", "semantic": "near_duplicate_semantic"}
    texts = [en(1, 60), en(1, 60), edit(en(1, 60), 2, 3)]
    d, keep, rejects = run(DedupConfig(exact=True, simhash=None, minhash=MinhashConfig()), table(texts))
    assert [s.name for s in d.active] == ["exact", "minhash"]
    assert [(r.id, r.reason) for r in rejects] == [("c1", "exact_duplicate"), ("c2", "near_duplicate_minhash")]
    assert rejects[0].message == "same normalised text as c0"
    assert rejects[1].message == "near duplicate (minhash) of c0" and 0.7 <= rejects[1].detail["jaccard"] < 1
    index = d.index()
    assert index.column_names == ["chunk_id", "length", "text_hash", "kept", "exact", "simhash", "minhash", "semantic"]
    assert index.column("simhash").null_count == 3 and index.column("exact").null_count == 0
