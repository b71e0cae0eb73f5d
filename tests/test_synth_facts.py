"""The `facts` strategy (several phrasings per fact, one language per sample, one held out) and mix's split
by fact (an eval question's fact is trained, its phrasing is not)."""
from __future__ import annotations

import json
from collections import defaultdict

from infuse.operators.mix import MixConfig, mix
from infuse.operators.qa_filter.language import LanguageOptions, check_language
from infuse.operators.synthesize import SynthConfig, plan, run_items
from infuse.operators.synthesize.strategies.facts import monolingual
from infuse.operators.common.tokens import tokens

from tests.test_synth import chunks_of, doc_row


def csv_record(i: int, name: str, value: str, meaning: str, advice: str) -> dict:
    fields = {"name": name, "value": value, "meaning": meaning, "处理建议": advice}
    text = f"# {name}\n\n## value\n\n{value}\n\n## meaning\n\n{meaning}\n\n## 处理建议\n\n{advice}"
    return doc_row(f"codes:{i}", "csv", text, title=name, metadata={"fields": fields})


def faq_doc() -> dict:
    text = ("# Quillmark Guide\n\n## Network\n\nThe Quillmark server listens on port 7420 by default. "
            "Backups run every 6 hours.\n\n## How do I reset the admin password?\n\n"
            "Run quillctl reset-admin on the host and restart the service.\n")
    heads = [(["Quillmark Guide"], 0, len(text)), (["Quillmark Guide", "Network"], 18, 112),
             (["Quillmark Guide", "How do I reset the admin password?"], 112, len(text))]
    sections = [{"heading_path": h, "start": s, "end": e, "level": len(h)} for h, s, e in heads]
    return doc_row("guide", "markdown", text, title="Quillmark Guide", sections=sections)


def synth(docs: list[dict], **facts) -> list[dict]:
    cfg = SynthConfig(by_format={"default": ["facts"]}, facts=facts)
    chunks = [c for d in docs for c in chunks_of(d, [(0, len(d["text"]))])]
    rows, statuses = run_items(plan(chunks, docs, cfg), None, cfg, chunks=chunks, docs=docs)
    assert rows and all(s.status == "done" for s in statuses), statuses
    return rows


def test_bilingual_record_gives_one_language_per_sample_and_several_phrasings_per_field():
    rows = synth([csv_record(0, "LOTUS_EIO", "-5", "I/O error while reading or writing a file",
                             "检查磁盘健康状态并运行 lotusctl verify")], phrasings=4)
    by_fact: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in rows:
        lang, problem = check_language(r["messages"], lambda: "", LanguageOptions())
        assert problem is None, (r["messages"], problem)
        assert lang in (r["lang"], None)
        meta = json.loads(r["meta"])
        if "fact_id" in meta:
            by_fact[(meta["fact_id"], r["lang"])].add(r["messages"][0]["content"])
    # value (-5, no language of its own) is asked in English and, with its name translated, in Chinese;
    # the English field only in English, the Chinese field only in Chinese
    assert len(by_fact) == 4, sorted(by_fact)
    assert all(len(qs) == 4 for qs in by_fact.values()), by_fact
    zh_value = [q for (f, lang), qs in by_fact.items() if lang == "zh" for q in qs if "值" in q]
    assert zh_value and all("value" not in q for q in zh_value)
    english = [r for r in rows if r["lang"] == "en"]
    assert english and not any("处理建议" in m["content"] for r in english for m in r["messages"])


def test_every_fact_has_a_short_answer_and_exactly_one_held_out_phrasing():
    rows = synth([csv_record(0, "LOTUS_EBUSY", "-16", "Database locked by another process", "用 lsof 找到进程")])
    held: dict[str, int] = defaultdict(int)
    shorts: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        meta = json.loads(r["meta"])
        if "short" in meta:
            held[meta["fact_id"]] += bool(meta["heldout"])
            shorts[meta["fact_id"]].add(meta["short"])
    assert held and all(n == 1 for n in held.values()), held
    assert {"-16"} in shorts.values()
    answers = [r["messages"][1]["content"] for r in rows if json.loads(r["meta"]).get("short") == "-16"]
    assert answers and all("LOTUS_EBUSY" in a and "-16" in a for a in answers)  # a full sentence, not "-16"


def test_sentences_with_values_and_faq_headings_become_questions():
    rows = synth([faq_doc()], phrasings=3)
    metas = [json.loads(r["meta"]) for r in rows]
    port = [r for r, m in zip(rows, metas) if m.get("short") == "7420"]
    assert len(port) == 3
    assert all("7420" not in r["messages"][0]["content"] for r in port)  # the question does not give it away
    assert all("7420" in r["messages"][1]["content"] for r in port)
    assert any(m.get("short") == "6 hours" for m in metas)
    faq = [r for r, m in zip(rows, metas) if m.get("kind") == "faq"]
    assert faq and all("quillctl reset-admin" in r["messages"][1]["content"] for r in faq)
    assert {r["messages"][0]["content"] for r in faq} >= {"How do I reset the admin password?"}


def test_monolingual_labels():
    assert monolingual("容量规划 Capacity Planning", "zh") == "容量规划"
    assert monolingual("容量规划 Capacity Planning", "en") == "Capacity Planning"
    assert monolingual("写入延迟 p99 / write latency p99", "en") == "write latency p99"
    assert monolingual("先运行 lotusctl migrate", "zh") == "先运行 lotusctl migrate"


def test_mix_holds_out_a_phrasing_of_eval_facts_and_trains_the_others():
    docs = [csv_record(i, f"LOTUS_E{i}", str(-i - 1), f"Error number {i} happened", f"第{i}种处理办法")
            for i in range(12)]
    rows = synth(docs, phrasings=4)
    res = mix(rows, MixConfig(general=[], domain_ratio=1.0, eval_ratio=0.3))
    evals = [s for s in res.eval if s.kind == "domain"]
    assert evals, "no fact was drawn for eval"
    train_q = {" ".join(tokens(s.messages[-2]["content"])) for s in res.train}
    train_facts = defaultdict(int)
    for s in res.train:
        train_facts[s.fact.get("fact_id")] += 1
    for s in evals:
        assert s.fact.get("heldout") is True and s.fact.get("short")
        assert " ".join(tokens(s.messages[-2]["content"])) not in train_q
        assert train_facts[s.fact["fact_id"]] >= 3  # the fact's other phrasings are trained
    assert all(json.loads(r["meta"]).get("short") for r in [s.to_row() for s in evals])
    assert res.split.facts_in_eval == len({s.fact["fact_id"] for s in evals}) and res.split.facts >= 36


def test_a_field_name_with_no_translation_is_asked_as_written_rather_than_lost():
    # a Chinese value under an English field name the glossary does not know: asked in Chinese, name as written
    fields = {"name": "QX-7", "flux rating": "每秒一万二千次"}
    doc = doc_row("r0", "csv", "\n".join(f"{k}: {v}" for k, v in fields.items()), title="QX-7",
                  metadata={"fields": fields})
    rows = [r for r in synth([doc]) if json.loads(r["meta"]).get("short") == "每秒一万二千次"]
    assert len(rows) == 4 and {r["lang"] for r in rows} == {"zh"}
    assert all("flux rating" in r["messages"][0]["content"] for r in rows)
