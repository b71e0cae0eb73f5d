"""mix: loaders per format, identity templates, dedup across sources, ratio and up-sampling arithmetic,
the split (stable when rows are added, stratified by chunk), exports that load back (LLaMA-Factory's
rules included), and the step in a real flow."""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from infuse.operators.mix import GeneralSource, IdentityValues, MixConfig, MixInputError, mix, write_exports
from infuse.operators.mix.identity import Identity
from infuse.operators.mix.load import load_source
from infuse.operators.mix.ratio import plan_targets
from infuse.operators.mix.sample import prompt_key
from infuse.operators.mix.split import assign_splits

NO_IDENTITY = Identity()


def qa_rows(docs: int, chunks: int, per_chunk: int = 1, prefix: str = "d", start_doc: int = 0) -> list[dict]:
    """Domain QA rows: `per_chunk` rows per chunk (a question and its paraphrases)."""
    rows = []
    for d in range(start_doc, start_doc + docs):
        for c in range(chunks):
            for q in range(per_chunk):
                rows.append({"sample_id": f"{prefix}{d}-c{c}-q{q}",
                             "messages": [{"role": "user", "content": f"Variant {q}: what does part {c} of "
                                                                       f"manual {prefix}{d} say?"},
                                          {"role": "assistant", "content": f"Part {c} of manual {d} says " * 8}],
                             "doc_id": f"{prefix}{d}", "chunk_id": f"{prefix}{d}-c{c}", "span_start": c * 100,
                             "span_end": c * 100 + 80, "strategy": "qa" if q == 0 else "qa+paraphrase", "lang": "en"})
    return rows


def general_file(path: Path, n: int, start: int = 0, fmt: str = "alpaca") -> Path:
    rows = []
    for i in range(start, start + n):
        if fmt == "alpaca":
            rows.append({"instruction": f"General task number {i}", "input": "", "output": f"Answer {i}. " * 10})
        else:
            rows.append({"messages": [{"role": "user", "content": f"General chat {i}"},
                                      {"role": "assistant", "content": f"Reply {i}. " * 10}]})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


# ---- loaders ----------------------------------------------------------------------------------

def _load(path: Path, **kw) -> tuple[dict[str, list], dict[str, str]]:
    loaded = load_source(GeneralSource(path=str(path), **kw), Identity("Bot", "ACME"))
    return ({s.ref: s.messages for s in loaded.samples}, {r.id: r.reason for r in loaded.rejects})


def test_alpaca_json_with_system_history_and_bad_rows(tmp_path):
    path = tmp_path / "alp.json"
    path.write_text(json.dumps([
        {"instruction": "Translate", "input": "bonjour", "output": "hello", "system": "You translate.",
         "history": [["Hi", "Hello! How can I help?"]]},
        {"instruction": "No answer here"},
        {"instruction": "x", "output": "y", "history": [["only one"]]},
        "just a string",
        {"instruction": 42, "output": "y"},
        {"instruction": "", "input": "", "output": "y"},
        {"instruction": "Who are you?", "output": "I am {{name}} by {{author}}."},
    ]))
    samples, rejects = _load(path)
    assert samples["alp#0"] == [{"role": "system", "content": "You translate."},
                                {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
                                {"role": "user", "content": "Translate\nbonjour"}, {"role": "assistant", "content": "hello"}]
    assert samples["alp#6"][-1]["content"] == "I am Bot by ACME."
    assert rejects == {"alp#1": "missing_field", "alp#2": "malformed_row", "alp#3": "malformed_row",
                       "alp#4": "malformed_row", "alp#5": "empty_content"}


def test_sharegpt_jsonl_roles_turns_and_a_broken_line(tmp_path):
    lines = [
        {"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "2+2?"},
                           {"from": "gpt", "value": "4"}]},
        {"system": "Column system.", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hey"},
                                                       {"from": "human", "value": "Bye"}, {"from": "gpt", "value": "Bye!"}]},
        {"conversations": [{"from": "human", "value": "weather?"}, {"from": "function_call", "value": "{}"}]},
        {"conversations": [{"from": "human", "value": "a"}, {"from": "human", "value": "b"}, {"from": "gpt", "value": "c"}]},
        {"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}, {"from": "human", "value": "c"}]},
    ]
    path = tmp_path / "sg.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines[:2]) + "\n{not json\n" +
                    "\n".join(json.dumps(x) for x in lines[2:]) + "\n")
    samples, rejects = _load(path, format="sharegpt")
    assert samples["sg#0"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
                               {"role": "assistant", "content": "4"}]
    assert [m["role"] for m in samples["sg#1"]] == ["system", "user", "assistant", "user", "assistant"]
    assert samples["sg#1"][0]["content"] == "Column system."
    assert rejects == {"sg#2": "malformed_json", "sg#3": "unsupported_role", "sg#4": "bad_turns", "sg#5": "bad_turns"}


def test_messages_parquet_columns_mapping_and_unknown_shape(tmp_path):
    pq.write_table(pa.Table.from_pylist([
        {"messages": [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"}]},
        {"messages": [{"role": "user", "content": "Q2"}, {"role": "tool", "content": "{}"}]},
        {"messages": [{"role": "user", "content": "Q3"}, {"role": "assistant", "content": "   "}]},
    ]), tmp_path / "m.parquet")
    samples, rejects = _load(tmp_path / "m.parquet")
    assert samples == {"m#0": [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"}]}
    assert rejects == {"m#1": "unsupported_role", "m#2": "empty_content"}

    # a ".json" file that is really JSON Lines, with its own column names
    (tmp_path / "qa.json").write_text('{"question": "Q", "answer": "A"}\n{"text": "no shape"}\n')
    samples, rejects = _load(tmp_path / "qa.json", columns={"instruction": "question", "output": "answer"})
    assert samples == {"qa#0": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}
    assert rejects == {"qa#1": "unknown_format"}


def test_the_check_reads_a_file_as_the_run_does(tmp_path):
    """`infuse validate` names a general file's bad rows by line, read by the run's own reader: a U+2028 inside
    a JSON string is part of its line, not a line break (str.splitlines() would cut the row in two)."""
    from infuse.operators.mix.load import check_rows, row_problem

    path = tmp_path / "g.jsonl"
    path.write_text(json.dumps({"instruction": "one\u2028line", "output": "fine"}, ensure_ascii=False) + "\n\n"
                    + "{not json\n" + json.dumps({"foo": 1}) + "\n", encoding="utf-8")
    src = GeneralSource(path=str(path))
    found = [(where, row_problem(row, src)) for where, row in check_rows(path)]
    assert found == [("line 1", None),
                     ("line 3", "not valid JSON (Expecting property name enclosed in double quotes, column 2)"),
                     ("line 4", "unknown_format: not alpaca (instruction/output), sharegpt (conversations) or "
                                "messages; keys: foo")]
    samples, rejects = _load(path)
    assert samples["g#0"][0]["content"] == "one\u2028line"
    assert rejects == {"g#1": "malformed_json", "g#2": "unknown_format"}
    doc = tmp_path / "d.json"
    doc.write_text(json.dumps({"data": [{"instruction": "a", "output": "b"}, {"bar": 2}]}))
    assert [(w, row_problem(r, GeneralSource(path=str(doc)))) for w, r in check_rows(doc)] == [
        ("row 0", None), ("row 1", "unknown_format: not alpaca (instruction/output), sharegpt (conversations) or "
                                   "messages; keys: bar")]


def test_unreadable_and_missing_files(tmp_path):
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    samples, rejects = _load(tmp_path / "bad.parquet")
    assert samples == {} and rejects == {"bad": "unreadable_file"}, "the whole source is one reject, no crash"
    gbk = json.dumps({"instruction": "请介绍一下数据库的索引是什么东西", "output": "索引是一种帮助数据库快速查找数据的结构。"},
                     ensure_ascii=False)
    (tmp_path / "gbk.jsonl").write_bytes(gbk.encode("gbk"))
    assert _load(tmp_path / "gbk.jsonl")[0]["gbk#0"][1]["content"].startswith("索引"), "not UTF-8: detected"
    (tmp_path / "empty.jsonl").write_text("")
    assert _load(tmp_path / "empty.jsonl")[1] == {"empty": "empty_file"}
    with pytest.raises(MixInputError, match="no such file"):
        _load(tmp_path / "nope.jsonl")
    with pytest.raises(ValueError, match="exactly one of"):
        GeneralSource(path="a.json", builtin="general_zh")
    with pytest.raises(ValueError, match="distinct names"):
        MixConfig(general=[GeneralSource(path="x/a.json"), GeneralSource(path="y/a.jsonl")])


def test_shipped_sets_load_clean_in_both_languages():
    for name, lang in (("general_zh", "zh"), ("general_en", "en")):
        loaded = load_source(GeneralSource(builtin=name), NO_IDENTITY)
        assert not loaded.rejects and len(loaded.samples) >= 100
        assert Counter(s.lang for s in loaded.samples) == {lang: len(loaded.samples)}
        assert len({prompt_key(s.messages) for s in loaded.samples}) == len(loaded.samples)
        assert any(len(s.messages) > 3 for s in loaded.samples), "some multi-turn rows"
        assert sum(len(s.messages[-1]["content"]) for s in loaded.samples) / len(loaded.samples) > 300
    ident = load_source(GeneralSource(builtin="identity"), Identity({"zh": "莲花助手", "en": "LotusBot"}, "LotusDB"))
    assert not ident.rejects and {s.kind for s in ident.samples} == {"identity"}
    text = {lang: " ".join(s.messages[-1]["content"] for s in ident.samples if s.lang == lang) for lang in ("zh", "en")}
    assert "莲花助手" in text["zh"] and "LotusBot" not in text["zh"] and "LotusBot" in text["en"]
    assert "{{" not in text["zh"] + text["en"]


def test_identity_templates_leave_code_braces_and_reject_when_unset():
    msgs = [{"role": "user", "content": "Who are you?"},
            {"role": "assistant", "content": "I am {{ name }}. Code: f'{x}' and {{ jinja }} stay."}]
    out = Identity({"en": "LotusBot"}, "T").fill(msgs, "zh")  # no zh value: English is the fallback
    assert out[1]["content"] == "I am LotusBot. Code: f'{x}' and {{ jinja }} stay."
    with pytest.raises(Exception, match="identity.name"):
        NO_IDENTITY.fill(msgs, "en")
    fallback = Identity.of(IdentityValues(), IdentityValues(name="A", author="B"))
    assert (fallback.name, fallback.author) == ("A", "B")


# ---- dedup, ratio, split ------------------------------------------------------------------------

def test_dedup_across_sources_keeps_the_domain_row_and_names_it(tmp_path):
    domain = qa_rows(1, 3)
    domain[0]["messages"][0]["content"] = "What is LotusDB?"
    path = tmp_path / "g.jsonl"
    path.write_text(json.dumps({"instruction": "what is  LOTUSDB", "output": "x"}) + "\n" +
                    json.dumps({"instruction": "ＷＨＡＴ　ＩＳ　ＬＯＴＵＳＤＢ？", "output": "y"}) + "\n" +
                    json.dumps({"instruction": "something else", "output": "z"}) + "\n")
    res = mix(domain, MixConfig(general=[GeneralSource(path=str(path))], max_upsample=1))
    dups = [r for r in res.rejects if r.reason == "duplicate_prompt"]
    assert {r.id for r in dups} == {"g#0", "g#1"}
    assert all(r.detail["kept"] == domain[0]["sample_id"] and r.detail["kept_source"] == "domain" for r in dups)
    assert domain[0]["sample_id"] in {s.sample_id for s in res.train + res.eval}


def test_plan_targets_weights_caps_and_rounding():
    targets, capped = plan_targets(100, [("a", 1, 1000), ("b", 1, 1000)], 3)
    assert targets == {"a": 50, "b": 50} and not capped
    assert plan_targets(100, [("a", 3, 1000), ("b", 1, 1000)], 3)[0] == {"a": 75, "b": 25}
    targets, capped = plan_targets(100, [("a", 1, 10), ("b", 1, 1000)], 3)
    assert targets == {"a": 30, "b": 70} and capped == {"a"}, "a's shortfall goes to b"
    targets, capped = plan_targets(100, [("a", 1, 10), ("b", 1, 10)], 3)
    assert targets == {"a": 30, "b": 30} and capped == {"a", "b"}
    assert sum(plan_targets(10, [("a", 1, 99), ("b", 1, 99), ("c", 1, 99)], 1)[0].values()) == 10
    assert plan_targets(5, [("a", 1, 0), ("b", 1, 50)], 3)[0] == {"a": 0, "b": 5}


def test_ratio_upsampling_cap_and_every_row_accounted_for(tmp_path):
    domain = qa_rows(4, 10)  # 40 rows
    small = general_file(tmp_path / "small.jsonl", 10)
    big = general_file(tmp_path / "big.jsonl", 500, start=1000, fmt="messages")
    cfg = MixConfig(domain_ratio=0.3, max_upsample=3, general=[GeneralSource(path=str(small), weight=1),
                                                               GeneralSource(path=str(big), weight=1)])
    res = mix(domain, cfg)
    d_train = sum(s.source == "domain" for s in res.train)
    assert res.general_wanted == round(d_train * 0.7 / 0.3)
    assert abs(res.domain_share - 0.3) < 0.01
    plans = {s.source: s.plan for s in res.sources}
    assert plans["small"].capped and plans["small"].train_rows == 3 * plans["small"].train_available
    assert plans["small"].train_rows + plans["big"].train_rows == res.general_wanted
    copies = Counter(s.sample_id.split("~")[0] for s in res.train if s.source == "small")
    assert max(copies.values()) <= 3, "no row repeated beyond max_upsample"
    assert not any("~r" in s.sample_id for s in res.eval), "eval rows are never repeated"
    assert not {s.sample_id.split("~")[0] for s in res.train} & {s.sample_id for s in res.eval}
    # every input row: in the mix once (repeats aside) or rejected once, with a reason
    refs_out = {s.ref for s in res.train + res.eval}
    rejected = [r.id for r in res.rejects]
    assert len(rejected) == len(set(rejected)) and not refs_out & set(rejected)
    assert refs_out | set(rejected) == {r["sample_id"] for r in domain} | {f"small#{i}" for i in range(10)} | \
        {f"big#{i}" for i in range(500)}
    assert {r.reason for r in res.rejects} == {"over_ratio"}
    # eval rows of a down-sampled source follow its train share
    big_plan = plans["big"]
    assert big_plan.eval_taken == round(big_plan.eval_available * big_plan.train_taken / big_plan.train_available)


def test_too_little_general_data_leaves_the_domain_share_high_and_says_so(tmp_path):
    from infuse.operators.mix.report import markdown

    src = general_file(tmp_path / "tiny.jsonl", 5)
    res = mix(qa_rows(5, 10), MixConfig(max_upsample=2, general=[GeneralSource(path=str(src))]))
    assert res.domain_share > 0.5
    assert "Not enough general data" in markdown(res, 2)


def _split_of(rows: list[dict], general: list[GeneralSource], **kw) -> dict[str, str]:
    res = mix(rows, MixConfig(general=general, **kw))
    return {s.sample_id: s.split for s in res.train + res.eval}


def test_split_is_stable_when_rows_are_added(tmp_path):
    gen = GeneralSource(path=str(general_file(tmp_path / "g.jsonl", 200)), name="g")
    rows = qa_rows(6, 8, per_chunk=2)
    before = _split_of(rows, [gen], domain_ratio=0.5)
    # more QA for existing chunks, whole new documents, more general rows
    more = rows + qa_rows(6, 8, per_chunk=3)[2::3] + qa_rows(3, 8, per_chunk=2, start_doc=10)
    for r in more[len(rows):]:
        r["sample_id"] += "-new"
    general_file(tmp_path / "g.jsonl", 300)
    after = _split_of(more, [gen], domain_ratio=0.5)
    shared = set(before) & set(after)
    assert {r["sample_id"] for r in rows} <= shared, "every domain row is still there"
    assert len(shared) > len(rows) + 50
    assert {k: before[k] for k in shared} == {k: after[k] for k in shared}, "no row changed sides"
    assert _split_of(rows, [gen], domain_ratio=0.5, seed=1) != before, "the seed picks another split"


def test_split_keeps_each_chunk_together_and_covers_every_large_document():
    from infuse.operators.mix.core import domain_samples

    samples, _ = domain_samples(qa_rows(8, 12, per_chunk=3) + qa_rows(5, 3, per_chunk=2, prefix="small"))
    stats = assign_splits(samples, 0.1, 0, min_doc_chunks=10)
    by_chunk: dict[str, set[str]] = {}
    for s in samples:
        by_chunk.setdefault(s.chunk_id, set()).add(s.split)
    assert all(len(v) == 1 for v in by_chunk.values()), "a chunk's question and its paraphrases share a side"
    for d in range(8):
        assert any(s.split == "eval" for s in samples if s.doc_id == f"d{d}"), f"document d{d} has eval items"
    eval_share = sum(v == {"eval"} for v in by_chunk.values()) / len(by_chunk)
    assert 0.05 <= eval_share <= 0.25
    assert stats.docs_eligible == 8 and stats.docs_with_eval >= 8
    assert all(doc.startswith("d") for doc, _ in stats.promoted), "small documents are not forced"


# ---- exports --------------------------------------------------------------------------------------

CONVERSATIONS = [
    [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"},
     {"role": "assistant", "content": "Hello."}],
    [{"role": "system", "content": "你是助手。"}, {"role": "user", "content": "你好"}, {"role": "assistant", "content": "你好！"},
     {"role": "user", "content": "再见\n明天见"}, {"role": "assistant", "content": "再见！"},
     {"role": "user", "content": "第三轮"}, {"role": "assistant", "content": "好的"}],
]

# LLaMA-Factory's dataset_info.json keys (src/llamafactory/data/parser.py: DatasetAttr and get_dataset_list)
LF_KEYS = {"hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name", "file_name", "file_sha1",
           "formatting", "ranking", "subset", "split", "folder", "num_samples", "revision", "columns", "tags"}
LF_COLUMNS = {"alpaca": {"system", "tools", "images", "videos", "audios", "chosen", "rejected", "kto_tag",
                         "prompt", "query", "response", "history"},
              "sharegpt": {"system", "tools", "images", "videos", "audios", "chosen", "rejected", "kto_tag",
                           "messages"}}
LF_TAGS = {"role_tag", "content_tag", "user_tag", "assistant_tag", "observation_tag", "function_tag", "system_tag"}
LF_DEFAULTS = {"prompt": "instruction", "query": "input", "response": "output", "history": None,
               "messages": "conversations", "system": None, "role_tag": "from", "content_tag": "value",
               "user_tag": "human", "assistant_tag": "gpt", "system_tag": "system"}


def lf_load(dataset_dir: Path, name: str, cache: Path) -> list[list[dict]]:
    """A dataset the way LLaMA-Factory reads it: its dataset_info entry (a `columns` block sets every
    column it leaves out to none), `datasets.load_dataset("json")`, then its alpaca / sharegpt rules."""
    from datasets import load_dataset

    info = json.loads((dataset_dir / "dataset_info.json").read_text())[name]
    assert set(info) <= LF_KEYS, set(info) - LF_KEYS
    fmt = info.get("formatting", "alpaca")
    attr = dict(LF_DEFAULTS)
    if "columns" in info:
        assert set(info["columns"]) <= LF_COLUMNS[fmt]
        for col in LF_COLUMNS[fmt] & set(LF_DEFAULTS):
            attr[col] = info["columns"].get(col)
    if fmt == "sharegpt" and "tags" in info:
        assert set(info["tags"]) <= LF_TAGS
        for tag in LF_TAGS & set(LF_DEFAULTS):
            attr[tag] = info["tags"].get(tag)
    path = dataset_dir / info["file_name"]
    assert info.get("file_sha1") in (None, hashlib.sha1(path.read_bytes()).hexdigest())
    out = []
    for ex in load_dataset("json", data_files=str(path), split="train", cache_dir=str(cache)):
        system = ex[attr["system"]] if attr["system"] else ""
        if fmt == "alpaca":
            msgs = []
            if attr["history"] and isinstance(ex[attr["history"]], list):
                for q, a in ex[attr["history"]]:
                    msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
            query = [ex[k] for k in (attr["prompt"], attr["query"]) if k and ex[k]]
            msgs += [{"role": "user", "content": "\n".join(query)}, {"role": "assistant", "content": ex[attr["response"]]}]
        else:
            turns = ex[attr["messages"]]
            if turns and turns[0][attr["role_tag"]] == attr["system_tag"]:
                system, turns = turns[0][attr["content_tag"]], turns[1:]
            roles = {attr["user_tag"]: "user", attr["assistant_tag"]: "assistant"}
            msgs = []
            for i, t in enumerate(turns):
                assert t[attr["role_tag"]] == (attr["user_tag"], attr["assistant_tag"])[i % 2], "LF would drop it"
                msgs.append({"role": roles[t[attr["role_tag"]]], "content": t[attr["content_tag"]]})
            assert len(msgs) % 2 == 0
        out.append(([{"role": "system", "content": system}] if system else []) + msgs)
    return out


def test_exports_round_trip_in_every_format(tmp_path):
    root = tmp_path / "exports"
    files = write_exports(root, {"train": CONVERSATIONS, "eval": CONVERSATIONS[:1]})
    assert files["llamafactory/infuse_train_alpaca.jsonl"] == 3 and files["swift/eval.jsonl"] == 1
    for split, want in (("train", CONVERSATIONS), ("eval", CONVERSATIONS[:1])):
        for fmt in ("alpaca", "sharegpt"):
            path = root / "llamafactory" / f"infuse_{split}_{fmt}.jsonl"
            loaded = load_source(GeneralSource(path=str(path), format=fmt), NO_IDENTITY)
            assert [s.messages for s in loaded.samples] == want and not loaded.rejects
            assert lf_load(root / "llamafactory", f"infuse_{split}_{fmt}", tmp_path / "hf") == want
        for tool in ("swift", "openai"):
            lines = (root / tool / f"{split}.jsonl").read_text().splitlines()
            assert [json.loads(x) for x in lines] == [{"messages": m} for m in want]
    info = json.loads((root / "llamafactory" / "dataset_info.json").read_text())
    assert sorted(info) == ["infuse_eval_alpaca", "infuse_eval_sharegpt", "infuse_train_alpaca", "infuse_train_sharegpt"]
    assert "infuse_train_sharegpt" in (root / "README.md").read_text()


def test_run_mix_returns_what_it_exported_and_its_report(tmp_path):
    """The step's work without a flow: rows of both splits, the export files holding exactly them, the report."""
    from infuse.operators.mix.run import run_mix

    cfg = MixConfig(general=[GeneralSource(path=str(general_file(tmp_path / "g.jsonl", 60)))], domain_ratio=0.5,
                    exports=["openai"])
    res = run_mix(qa_rows(2, 10), cfg, IdentityValues(), tmp_path / "out")
    assert res.exports == {"openai/train.jsonl": len(res.train), "openai/eval.jsonl": len(res.eval)}
    exported = [json.loads(x)["messages"] for x in (tmp_path / "out" / "openai" / "train.jsonl").read_text().splitlines()]
    assert exported == [r["messages"] for r in res.train]
    assert {r["split"] for r in res.train} == {"train"} and {r["split"] for r in res.eval} == {"eval"}
    assert sum(r["source"] == "domain" for r in res.train) * 2 == len(res.train), "domain_ratio 0.5"
    assert res.rows_in == 20 + 60 and res.stats["train_rows"] == len(res.train)
    assert [r["source"] for r in res.sources] == ["domain", "g"] and res.composition[:4] == b"\x89PNG"
    assert "domain share of train **50.0%**" in res.markdown


def test_an_empty_split_gets_no_files(tmp_path):
    write_exports(tmp_path, {"train": CONVERSATIONS, "eval": []}, ["llamafactory", "openai"])
    assert sorted(json.loads((tmp_path / "llamafactory" / "dataset_info.json").read_text())) == \
        ["infuse_train_alpaca", "infuse_train_sharegpt"]
    assert not (tmp_path / "openai" / "eval.jsonl").exists() and not (tmp_path / "swift").exists()


# ---- the step in a real flow ------------------------------------------------------------------------

PLUGIN = str(Path(__file__).with_name("plugin_qa_source.py"))
UPSTREAM = ["parse", "chunk", "clean", "filter", "dedup", "synthesize", "qa_filter"]


def _run(recipe: Path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from infuse.flows.pipeline import infuse_pipeline

    state = infuse_pipeline(str(recipe), return_state=True)
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
    return state, {tr.name: tr.state.name for tr in runs}, state.result(raise_on_failure=False)


@pytest.mark.usefixtures("prefect_server")
def test_mix_step_in_a_flow(tmp_path, monkeypatch):
    from infuse.operators.common.dataset import SFT_SCHEMA

    monkeypatch.chdir(tmp_path)  # general paths in the recipe are relative to where infuse runs
    qa = qa_rows(4, 10, per_chunk=2)
    qa.append({**qa[0], "sample_id": "broken", "messages": [{"role": "assistant", "content": "no question"}]})
    (tmp_path / "qa.jsonl").write_text("\n".join(json.dumps(r) for r in qa))
    (tmp_path / "data").mkdir()
    general_file(tmp_path / "data" / "extra.jsonl", 40)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "mixtest", "input": str(tmp_path), "storage": str(tmp_path / "runs"), "plugins": [PLUGIN],
        "steps": {**{s: {"enabled": False} for s in UPSTREAM}, "qa_source": {"path": str(tmp_path / "qa.jsonl")},
                  "synthesize": {"enabled": False, "identity": {"name": "LotusBot", "author": "the LotusDB team"}},
                  "mix": {"general": [{"builtin": "general_en"}, {"builtin": "identity", "weight": 0.3},
                                      {"path": "data/extra.jsonl", "weight": 0.5}]}},
    }))
    state, states, res = _run(recipe)
    assert state.is_completed(), state.message
    assert states == {"qa_source": "Completed", "mix": "Completed"}
    out = res["mix"]
    train, eval_ = pq.read_table(out["outputs"]["train"]["path"]), pq.read_table(out["outputs"]["eval"]["path"])
    assert train.schema.equals(SFT_SCHEMA) and eval_.schema.equals(SFT_SCHEMA)
    rows = train.to_pylist()
    assert abs(sum(r["source"] == "domain" for r in rows) / len(rows) - 0.3) < 0.01
    assert {r["source"] for r in rows} == {"domain", "general_en", "identity", "extra"}
    assert {r["split"] for r in rows} == {"train"} and set(eval_.column("split").to_pylist()) == {"eval"}
    ident = [r for r in rows if r["kind"] == "identity"]
    text = " ".join(m["content"] for r in ident for m in r["messages"])
    assert "LotusBot" in text and "the LotusDB team" in text and "{{" not in text, "synthesize.identity fills them"
    rejects = pq.read_table(out["rejects"]["path"]).to_pylist()
    assert {"id": "broken", "reason": "bad_turns"} in [{"id": r["id"], "reason": r["reason"]} for r in rejects]
    exports = Path(out["outputs"]["exports"]["path"])
    assert (exports / "llamafactory" / "dataset_info.json").is_file()
    assert len((exports / "openai" / "train.jsonl").read_text().splitlines()) == len(rows)
    report = Path(out["report"]["path"])
    assert (report / "composition.png").read_bytes()[:4] == b"\x89PNG"
    assert "| extra | general |" in (report / "report.md").read_text()
    assert out["stats"]["sources"]["extra"]["weight"] == 0.5


def test_cache_key_follows_general_file_contents_not_their_place(tmp_path, monkeypatch):
    from infuse.flows.recipe import parse_recipe
    from infuse.tasks.mix import Mix

    def key(cwd: Path) -> str:
        monkeypatch.chdir(cwd)
        recipe = parse_recipe({"input": ".", "steps": {"mix": {"general": [{"path": "g.jsonl"}]}}})
        return Mix().cache_key(Mix().config(recipe), {"qa": {"sha256": "q"}})

    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        general_file(tmp_path / d / "g.jsonl", 5)
    assert key(tmp_path / "a") == key(tmp_path / "b"), "same content elsewhere: same key"
    general_file(tmp_path / "b" / "g.jsonl", 6)
    assert key(tmp_path / "a") != key(tmp_path / "b")
    with pytest.raises(MixInputError, match="no such file"):
        key(tmp_path)
