"""Synthesis: template strategies (exact outputs), JSON repair, LLM strategies with a canned
generate() (parsing, retries, failure kinds, wave batching), RAG retrieval, plan/estimate,
and one end-to-end run with the real transformers backend when it exists."""
from __future__ import annotations

import json
import sys

import numpy as np
import pyarrow as pa
import pytest

from infuse.operators.parsers.document import CHUNK_SCHEMA, DOCUMENT_SCHEMA
from infuse.operators.llm.base import ChatRequest, ChatResult
from infuse.operators.prompts import load_prompt, render
from infuse.operators.synthesize import QA_SCHEMA, SynthConfig, estimate, format_estimate, plan, run_items
from infuse.operators.synthesize.jsonrepair import ParseError, parse_json_loose, parse_qa, parse_questions
from infuse.operators.common.lang import cjk_ratio, detect_lang
from infuse.operators.synthesize.rag import build_index

# ---------------------------------------------------------------- fixtures

SYNTAX = "size_t _aligned_msize_dbg( void *memblock, size_t alignment, size_t offset);参数memblock指向内存块的指针。"
RETURN = "返回无符号整数形式的大小（以字节为单位）。"
REMARK = "alignment 和 offset 值必须与传递给分配该块的函数的值相同。_aligned_msize_dbg 是 _aligned_msize 函数的调试版本。"


RECORDS = {"json": ["record_template"], "csv": ["record_template"]}  # the one-question-per-field template (not facts)


def doc_row(doc_id, fmt, text, title="", sections=(), metadata=None, path=None):
    return {"doc_id": doc_id, "path": path or f"{doc_id}.{fmt}", "format": fmt, "title": title, "text": text,
            "sections": list(sections), "pages": [], "metadata": json.dumps(metadata or {}, ensure_ascii=False)}


def chunks_of(doc, bounds, kind="text"):
    return [{"chunk_id": f"{doc['doc_id']}-c{i}", "doc_id": doc["doc_id"], "path": doc["path"], "format": doc["format"],
             "chunk_index": i, "text": doc["text"][s:e], "heading_path": [], "page": None, "start": s, "end": e,
             "kind": kind} for i, (s, e) in enumerate(bounds)]


def record_doc():
    fields = {"函数名": "_aligned_msize_dbg", "语法": SYNTAX, "返回值": RETURN, "备注": REMARK}
    text = "\n".join(f"{k}: {v}" for k, v in fields.items())
    return doc_row("rec1", "json", text, title="crt.json", metadata={"fields": fields})


class Canned:
    """A generate() returning canned text, for checking parsing/repair and bookkeeping only."""

    name = "canned"
    model = "canned-model"

    def __init__(self, reply):
        self.reply = reply  # fn(ChatRequest, call_no) -> str | ChatResult
        self.batches: list[list[ChatRequest]] = []

    def generate(self, requests):
        self.batches.append(list(requests))
        out = []
        for r in requests:
            v = self.reply(r, len(self.batches))
            if isinstance(v, ChatResult):
                v.id = r.id
                out.append(v)
            else:
                out.append(ChatResult(r.id, text=v, usage={"prompt_tokens": 10, "completion_tokens": 6},
                                      model="canned-model"))
        return out


def user_of(req):
    return next(m["content"] for m in req.messages if m["role"] == "user")


def system_of(req):
    return next((m["content"] for m in req.messages if m["role"] == "system"), "")


# ---------------------------------------------------------------- templates


def test_record_template_exact_rows_and_spans():
    doc = record_doc()
    cfg = SynthConfig(by_format=RECORDS, record={"question_templates": {"语法": "介绍一下C语言函数{title}的语法。",
                                                     "返回值": "介绍一下C语言函数{title}的返回值。",
                                                     "备注": "介绍一下C语言函数{title}的备注。"},
                              "introduce_template": "介绍一下C语言函数{title}。"})
    chunks = chunks_of(doc, [(0, len(doc["text"]))], kind="record")
    items = plan(chunks, [doc], cfg)
    assert [(i.strategy, i.doc_id, i.expected_samples) for i in items] == [("record_template", "rec1", 4)]
    rows, status = run_items(items, None, cfg, chunks=chunks, docs=[doc])
    assert [(s.status, s.n_samples, s.error_kind) for s in status] == [("done", 4, None)]
    got = [(r["messages"][0]["content"], r["messages"][1]["content"]) for r in rows]
    assert got[:3] == [("介绍一下C语言函数_aligned_msize_dbg的语法。", SYNTAX),
                       ("介绍一下C语言函数_aligned_msize_dbg的返回值。", RETURN),
                       ("介绍一下C语言函数_aligned_msize_dbg的备注。", REMARK)]
    # one more sample gathers every field of the record: the detailed answer the design notes ask for
    assert got[3] == ("介绍一下C语言函数_aligned_msize_dbg。", f"语法：{SYNTAX}\n返回值：{RETURN}\n备注：{REMARK}")
    assert (rows[3]["span_start"], rows[3]["span_end"]) == (rows[0]["span_start"], rows[2]["span_end"])
    assert json.loads(rows[3]["meta"]) == {"introduce": True} and rows[3]["lang"] == "zh"
    for r, value in zip(rows, (SYNTAX, RETURN, REMARK)):
        assert doc["text"][r["span_start"]:r["span_end"]] == value
        assert [m["role"] for m in r["messages"]] == ["user", "assistant"]
        assert (r["strategy"], r["generator"], r["chunk_id"], r["source_chunk_ids"]) == \
               ("record_template", "template", "rec1-c0", ["rec1-c0"])
        assert r["prompt_version"].startswith("record_template.zh.v2@")
        assert (r["usage_prompt_tokens"], r["usage_completion_tokens"], r["lang"], r["format"]) == (0, 0, "zh", "json")
    pa.Table.from_pylist(rows, schema=QA_SCHEMA)  # rows fit the schema


def test_record_template_generic_fallback_and_english():
    doc = record_doc()
    cfg = SynthConfig(by_format=RECORDS)
    rows, _ = run_items(plan([], [doc], cfg), None, cfg, docs=[doc])
    assert [r["messages"][0]["content"] for r in rows] == [
        "_aligned_msize_dbg的语法是什么？", "_aligned_msize_dbg的返回值是什么？", "_aligned_msize_dbg的备注是什么？",
        "介绍一下_aligned_msize_dbg。"]
    en = doc_row("rec2", "csv", "name: Widget\ncolor: deep blue\nweight: 12 kg", title="w.csv",
                 metadata={"fields": {"name": "Widget", "color": "deep  blue", "weight": 12}})
    rows, _ = run_items(plan([], [en], cfg), None, cfg, docs=[en])
    assert [(r["messages"][0]["content"], r["messages"][1]["content"]) for r in rows] == [
        ("What is the color of Widget?", "deep blue"),  # whitespace-tolerant match returns the document's text
        ("What is the weight of Widget?", "12"),
        ("Tell me about Widget.", "color: deep blue\nweight: 12")]
    assert en["text"][rows[1]["span_start"]:rows[1]["span_end"]] == "12"


def test_section_template():
    text = "# 安装\n\n## 依赖\n需要 Python 3.11 以及 pyarrow，安装前请先升级 pip。\n\n## 步骤\n运行 make install 即可完成安装，整个过程约需五分钟。\n"
    s_dep = text.index("## 依赖")
    s_step = text.index("## 步骤")
    sections = [{"heading_path": ["安装"], "level": 1, "start": 0, "end": len(text)},
                {"heading_path": ["安装", "依赖"], "level": 2, "start": s_dep, "end": s_step},
                {"heading_path": ["安装", "步骤"], "level": 2, "start": s_step, "end": len(text)}]
    doc = doc_row("md1", "md", text, title="install", sections=sections)
    chunks = chunks_of(doc, [(0, s_step), (s_step, len(text))])
    cfg = SynthConfig(by_format={"md": ["section_template"]})
    items = plan(chunks, [doc], cfg)
    assert [(i.strategy, i.expected_samples) for i in items] == [("section_template", 3)]
    rows, status = run_items(items, None, cfg, chunks=chunks, docs=[doc])
    assert status[0].status == "done"
    body_dep = "需要 Python 3.11 以及 pyarrow，安装前请先升级 pip。"
    body_step = "运行 make install 即可完成安装，整个过程约需五分钟。"
    got = [(r["messages"][0]["content"], r["messages"][1]["content"], r["chunk_id"]) for r in rows]
    assert got[1:] == [("请介绍安装 > 依赖。", body_dep, "md1-c0"), ("请介绍安装 > 步骤。", body_step, "md1-c1")]
    assert got[0][0] == "请介绍安装。" and got[0][1] == text[text.index("## 依赖"):].strip()
    for r in rows:
        assert text[r["span_start"]:r["span_end"]] == r["messages"][1]["content"]
    assert rows[0]["source_chunk_ids"] == ["md1-c0", "md1-c1"]


def test_continuation():
    p1 = "第一回　灵鹫宫中，童姥正在练功。她一边运气，一边低声念着口诀。"
    p2 = "忽听得门外脚步声响，一个小和尚闯了进来，满脸惊慌。"
    text = p1 + "\n" + p2
    doc = doc_row("book1", "txt", text, title="天龙八部", metadata={"author": "金庸"})
    chunks = chunks_of(doc, [(0, len(p1)), (len(p1) + 1, len(text))])
    cfg = SynthConfig(by_format={"txt": ["continuation"]})
    items = plan(chunks, [doc], cfg)
    assert [(i.strategy, i.chunk_id) for i in items] == [("continuation", "book1-c1")]
    rows, _ = run_items(items, None, cfg, chunks=chunks, docs=[doc])
    assert len(rows) == 1
    assert rows[0]["messages"][0]["content"] == f"根据金庸的风格，续写下面这段文字：\n\n{p1}"
    assert rows[0]["messages"][1]["content"] == p2
    assert (rows[0]["span_start"], rows[0]["span_end"]) == (len(p1) + 1, len(text))
    # no author anywhere: the neutral wording
    doc2 = {**doc, "metadata": "{}"}
    rows, _ = run_items(items, None, cfg, chunks=chunks, docs=[doc2])
    assert rows[0]["messages"][0]["content"] == f"按照原文的风格，续写下面这段文字：\n\n{p1}"


def test_identity():
    cfg = SynthConfig(identity={"enabled": True, "name": "小知", "author": "知源科技"}, by_format={"default": []})
    items = plan([], [], cfg)
    assert [(i.strategy, i.lang) for i in items] == [("identity", "zh"), ("identity", "en")]
    rows, status = run_items(items, None, cfg)
    assert [s.n_samples for s in status] == [12, 12]
    assert rows[2]["messages"] == [{"role": "user", "content": "你叫什么名字？"},
                                   {"role": "assistant", "content": "我的名字是小知，由知源科技开发。"}]
    assert rows[14]["messages"][1]["content"] == "My name is 小知, and I was developed by 知源科技."
    assert all("{{" not in m["content"] for r in rows for m in r["messages"])
    assert all(r["doc_id"] == "" and r["span_start"] is None for r in rows)
    with pytest.raises(ValueError, match="identity.name"):
        SynthConfig(identity={"enabled": True})


def test_system_message_and_item_ids_deterministic():
    doc = record_doc()
    cfg = SynthConfig(system_message="你是一个C语言专家。")
    a = plan([], [doc], cfg)
    b = plan([], [doc], cfg)
    assert [i.item_id for i in a] == [i.item_id for i in b]
    assert plan([], [doc], SynthConfig())[0].item_id != a[0].item_id  # config is part of the id
    rows, _ = run_items(a, None, cfg, docs=[doc])
    assert rows[0]["messages"][0] == {"role": "system", "content": "你是一个C语言专家。"}
    rows2, _ = run_items(b, None, cfg, docs=[doc])
    assert [r["sample_id"] for r in rows] == [r["sample_id"] for r in rows2]


# ---------------------------------------------------------------- prompts


def test_prompts_versioned_and_overridable(tmp_path):
    p = load_prompt("qa_pairs", "zh")
    assert p.version.startswith("qa_pairs.zh.v2@") and len(p.version.split("@")[1]) == 8
    assert "尽可能保留原文描述" in p.system and "{{text}}" in p.user_template
    # the worked example goes in as a user/assistant turn rendered with the same user template
    msgs = p.messages(text="正文", n=3, target_chars=100)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[1]["content"].startswith("<Context>绿茶应放在密封罐中") and msgs[3]["content"] == "<Context>正文</Context>"
    assert parse_qa(msgs[2]["content"])[0] == ("绿茶应该如何保存？", "绿茶应放在密封罐中，置于阴凉干燥处保存，避免阳光直射。")
    assert load_prompt("qa_pairs", "en").examples and not load_prompt("paraphrase", "zh").examples
    assert load_prompt("qa_pairs", "en").system.startswith("The text inside <Context>")
    f = tmp_path / "my_qa.yaml"
    f.write_text("system: 只输出JSON。\nuser: '文本：{{text}}'\n", encoding="utf-8")
    o = load_prompt("qa_pairs", "zh", f)
    assert o.version.startswith("qa_pairs.zh.override@") and o.render(text="X") == "文本：X"
    assert render('{{a}} {b} {"json": 1} {{a}}', a="{b}", b="B") == '{b} B {"json": 1} {b}'


def test_language_detection():
    assert cjk_ratio("中文text") == pytest.approx(2 / 6)
    assert detect_lang("这是一段中文说明，包含 API 名称。") == "zh"
    assert detect_lang("An English passage with 一 char.") == "en"
    assert detect_lang("An English passage", forced="zh") == "zh"


# ---------------------------------------------------------------- JSON repair

GOOD = [("什么是A？", "A是一种方法。"), ("B怎么用？", "B这样用。")]


@pytest.mark.parametrize("raw", [
    '[{"question": "什么是A？", "answer": "A是一种方法。"}, {"question": "B怎么用？", "answer": "B这样用。"}]',
    '```json\n[{"question": "什么是A？", "answer": "A是一种方法。"},\n {"question": "B怎么用？", "answer": "B这样用。"}]\n```',
    '好的，以下是问答对：\n[{"question": "什么是A？", "answer": "A是一种方法。"}, {"question": "B怎么用？", "answer": "B这样用。"},]\n希望有帮助！',
    '{"qa": [{"问题": "什么是A？", "答案": "A是一种方法。"}, {"问题": "B怎么用？", "答案": "B这样用。"}]}',
    "[{'question': '什么是A？', 'answer': 'A是一种方法。'}, {'question': 'B怎么用？', 'answer': 'B这样用。'}]",
    '[{"问题"："什么是A？"，"答案"："A是一种方法。"}，{"问题"："B怎么用？"，"答案"："B这样用。"}]',
    '{"Question": "什么是A？", "Answer": "A是一种方法。"}\n{"Question": "B怎么用？", "Answer": "B这样用。"}',
    '<think>先想想</think>[{"q": "什么是A？", "a": "A是一种方法。"}, {"q": "B怎么用？", "a": "B这样用。"}]',
    '[{"question": "什么是A？", "answer": "A是一种方法。"}\n{"question": "B怎么用？", "answer": "B这样用。"}]',
    '[["什么是A？", "A是一种方法。"], ["B怎么用？", "B这样用。"]]',
])
def test_json_repair_accepts(raw):
    assert parse_qa(raw) == GOOD


@pytest.mark.parametrize("raw,kind", [
    ('[{"question": "什么是A？", "answer": "A是一种方法。', "malformed_json"),  # truncated inside the only pair
    ('{"qa": [{"question": "什么是A？", "answer": "A', "malformed_json"),
    ('[{"question": "什么是A？", "answer": ["A是", "一种方法"', "malformed_json"),  # never close a half-written pair
    ('[{"question": "什么是A？", "answer": "什么是A？"}]', "schema_invalid"),  # answer repeats the question
    ("", "empty_output"),
    ("   \n", "empty_output"),
    ("抱歉，我无法回答。", "malformed_json"),
    ('[{"question": "", "answer": "x"}, {"foo": 1}]', "schema_invalid"),
    ('{"summary": "no list here"}', "schema_invalid"),
    ('[{"question": "问题", "answer": "答案"}]', "schema_invalid"),  # the prompt's example echoed
])
def test_json_repair_rejects(raw, kind):
    with pytest.raises(ParseError) as e:
        parse_qa(raw)
    assert e.value.kind == kind


# A base model continuing the prefill `[{"question": "`: cut at max_tokens, or rambling on after the JSON.
@pytest.mark.parametrize("raw,pairs", [
    ('[{"question": "什么是A？", "answer": "A是一种方法。"}, {"question": "B怎么', GOOD[:1]),
    ('[{"question": "什么是A？", "answer": "A是一种方法。"}, {"question": "B怎么用？", "answer": "B这样', GOOD[:1]),
    ('[{"question": "什么是A？", "answer": "A是一种方法。"}, {"question": "B怎么用？", "answer": "B这样用。"}, ', GOOD),
    ('[{"question": "什么是A？", "answer": "A是一种方法。"}, {"question": "B怎么用？", "answer": "B这样用。"}]]\n\n'
     '* 更多问题 {"x": [\n<Context>', GOOD),
    ('[{"question": "什么是A？", "answer": "A是一种方法。"}, {"question": "B怎么用？", "answer": "B这样用。"}\n\n'
     'Question: what\'s "next', GOOD),  # never closed, then prose with a stray quote
    ('[{"question": "什么是A？", "answer": "A是一种方法。"}\n{"question": "B怎么用？", "answer": "B这样用。"}\n{"question": "C', GOOD),
    ('{"qa": [{"question": "什么是A？", "answer": "A是一种方法。"}, {"question": "B怎么用？", "answer": "B这样用。"}, {"q', GOOD),
    ('[{"question": "什么是A？", "answer": "A是一种方法。"}, {"question": "B怎么用？", "answer": "B这样用。"}}, {"question": "C', GOOD),
    ('[["什么是A？", "A是一种方法。"], ["B怎么用？", "B这样', GOOD[:1]),
    ('[{"question": "什么是A？", "answer": "A是一种方法。"}, {"question": "什么是A？", "answer": "A是一种方法。"}, {"q',
     [GOOD[0], GOOD[0]]),  # repeats are kept: qa_filter dedups
])
def test_json_repair_salvages_truncated_prefill_output(raw, pairs):
    assert parse_qa(raw) == pairs


def test_parse_questions_truncated():
    assert parse_questions('["A?", "B?", "C') == ["A?", "B?"]
    assert parse_questions('["A?", "B?"\n\n更多内容') == ["A?", "B?"]
    with pytest.raises(ParseError) as e:
        parse_questions('["A')
    assert e.value.kind == "malformed_json"


def test_parse_questions_variants():
    assert parse_questions('["A?", "B?"]') == ["A?", "B?"]
    assert parse_questions('{"questions": [{"question": "A?"}, "B?"]}') == ["A?", "B?"]
    assert parse_json_loose('说明 [1] 之后 {"a": 1}') == {"a": 1}  # a bracketed citation is skipped


# ---------------------------------------------------------------- LLM strategies (canned generate)

TEXT_ZH = "向量数据库用于存储嵌入向量，并支持按余弦相似度检索最相近的文本片段，常用于检索增强生成。"


def text_corpus():
    d1 = doc_row("d1", "txt", TEXT_ZH)
    return [d1], chunks_of(d1, [(0, len(TEXT_ZH))])


def test_qa_strategy_repairs_retries_and_paraphrases():
    docs, chunks = text_corpus()

    def reply(req, call_no):
        sys = system_of(req)
        if "续写" in sys:
            return ""
        if "改写成" in sys:  # paraphrase
            return '[{"question": "向量数据库有什么用途？", "answer": "它存储嵌入向量并按余弦相似度检索。"},' \
                   ' {"question": "为何使用向量数据库？", "answer": "用于检索增强生成。"}]'
        if call_no == 1:
            return "抱歉，格式错了 [{"  # malformed -> retried in the next wave
        return '```json\n[{"问题": "向量数据库做什么？", "答案": "向量数据库用于存储嵌入向量。"},]\n```'

    backend = Canned(reply)
    cfg = SynthConfig(by_format={"default": ["qa"]}, questions_per_chunk=3)
    items = plan(chunks, docs, cfg)
    rows, status = run_items(items, backend, cfg, chunks=chunks, docs=docs)
    assert [len(b) for b in backend.batches] == [1, 1, 1]  # qa, retry, paraphrase
    assert [(s.status, s.n_samples, s.calls, s.failed_calls, s.error_kind) for s in status] == [("done", 3, 3, 0, None)]
    assert [r["strategy"] for r in rows] == ["qa", "qa+paraphrase", "qa+paraphrase"]
    assert rows[0]["messages"][1]["content"] == "向量数据库用于存储嵌入向量。"
    assert (rows[0]["span_start"], rows[0]["span_end"], rows[0]["source_chunk_ids"]) == (0, len(TEXT_ZH), ["d1-c0"])
    assert rows[0]["generator"] == "canned-model"
    assert rows[0]["usage_prompt_tokens"] == 20 and rows[0]["usage_completion_tokens"] == 12  # both attempts
    assert rows[1]["prompt_version"].startswith("qa_pairs.zh.v2@") and "+paraphrase.zh.v1@" in rows[1]["prompt_version"]
    assert sum(r["usage_prompt_tokens"] for r in rows) == status[0].usage_prompt_tokens == 30


def test_failures_end_failed_with_kind_and_raw():
    docs, chunks = text_corpus()
    cfg = SynthConfig(by_format={"default": ["qa"]}, paraphrase={"enabled": False}, max_attempts=2)
    items = plan(chunks, docs, cfg)
    cases = [
        (lambda r, n: '[{"question": "截断', "malformed_json", '[{"question": "截断'),
        (lambda r, n: "", "empty_output", ""),
        (lambda r, n: '[{"answer": "没有问题字段"}]', "schema_invalid", '[{"answer": "没有问题字段"}]'),
        (lambda r, n: ChatResult("", error="timed out after 60s", error_kind="timeout"), "llm_timeout", None),
        (lambda r, n: ChatResult("", error="HTTP 500", error_kind="http_error", text="oops"), "llm_http_error", "oops"),
    ]
    for reply, kind, raw in cases:
        rows, status = run_items(items, Canned(reply), cfg, chunks=chunks, docs=docs)
        assert rows == []
        (s,) = status
        assert (s.status, s.error_kind, s.raw_text, s.n_samples) == ("failed", kind, raw, 0), kind
    # no backend at all: failed, not crashed
    _, status = run_items(items, None, cfg, chunks=chunks, docs=docs)
    assert (status[0].status, status[0].error_kind) == ("failed", "no_backend")
    # a chunk missing from the lookups
    _, status = run_items(items, Canned(lambda r, n: "[]"), cfg, chunks=[], docs=docs)
    assert (status[0].status, status[0].error_kind) == ("failed", "missing_source")

    class Raises:
        model = "x"

        def generate(self, requests):
            raise RuntimeError("server gone")

    _, status = run_items(items, Raises(), cfg, chunks=chunks, docs=docs)
    assert (status[0].status, status[0].error_kind) == ("failed", "llm_backend_error")


def test_prefill_sent_and_continued_output_parsed(tmp_path):
    """JSON-asking strategies send a prefill; a backend that applies it returns prefill + continuation."""
    docs, chunks = text_corpus()
    continuation = {  # what a base model writes after each prefill: cut off mid-pair / rambling on
        '[{"question": "': '向量数据库做什么？", "answer": "向量数据库用于存储嵌入向量。"}, {"question": "它怎么',
        '[{"instruction": "': '解释向量数据库。", "answer": "它支持按余弦相似度检索。"}]]\n\n<Context>',
        '["': '向量数据库做什么？", "它怎么检索？"\n\n* 更多',
    }

    def reply(req, n):
        return req.prefill + continuation[req.prefill] if req.prefill else "液氧和煤油。"

    cfg = SynthConfig(by_format={"default": ["qa", "self_instruct", "rag"]}, paraphrase={"enabled": True, "k": 1},
                      questions_per_chunk=2, self_instruct={"n": 1}, max_attempts=1)
    backend = Canned(reply)
    rows, status = run_items(plan(chunks, docs, cfg), backend, cfg, chunks=chunks, docs=docs,
                             embed_fn=lambda b: np.ones((len(b), 3)))
    # one pair (qa, self_instruct) or two questions (rag), each with one paraphrase
    assert [(s.strategy, s.status, s.n_samples) for s in status] == [("qa", "done", 2), ("self_instruct", "done", 2),
                                                                     ("rag", "done", 4)]
    sent = sorted({(system_of(r)[:12], r.prefill) for b in backend.batches for r in b})
    assert [p for _, p in sent].count('[{"question": "') == 2  # qa and paraphrase
    assert {p for _, p in sent} == {'[{"question": "', '[{"instruction": "', '["', None}  # None: rag answers
    qa_rows = [r for r in rows if r["strategy"] == "qa"]
    assert [(r["messages"][0]["content"], r["messages"][1]["content"]) for r in qa_rows] == [
        ("向量数据库做什么？", "向量数据库用于存储嵌入向量。")]
    assert [r["messages"][0]["content"] for r in rows if r["strategy"] == "rag"] == ["向量数据库做什么？", "它怎么检索？"]
    # a prompt override asking for another shape turns the default prefill off with `prefill: ""`
    f = tmp_path / "obj.yaml"
    f.write_text("system: '输出 {\"qa\": [...]}。'\nuser: '{{text}}'\nprefill: ''\n", encoding="utf-8")
    cfg2 = SynthConfig(by_format={"default": ["qa"]}, paraphrase={"enabled": False}, prompt_overrides={"qa_pairs": str(f)})
    b2 = Canned(lambda r, n: '{"qa": [{"question": "Q？", "answer": "A。"}]}')
    rows2, _ = run_items(plan(chunks, docs, cfg2), b2, cfg2, chunks=chunks, docs=docs)
    assert b2.batches[0][0].prefill is None and len(rows2) == 1


def test_waves_batch_all_items_in_one_generate_call():
    docs, chunks = [], []
    for k in range(3):
        d = doc_row(f"d{k}", "txt", TEXT_ZH + f"第{k}段。")
        docs.append(d)
        chunks += chunks_of(d, [(0, len(d["text"]))])
    cfg = SynthConfig(by_format={"default": ["qa"]}, paraphrase={"enabled": True, "k": 1})
    backend = Canned(lambda r, n: '[{"question": "Q1？", "answer": "向量数据库用于存储嵌入向量。"},'
                                  ' {"question": "Q2？", "answer": "支持按余弦相似度检索。"}]')
    rows, status = run_items(plan(chunks, docs, cfg), backend, cfg, chunks=chunks, docs=docs)
    assert [len(b) for b in backend.batches] == [3, 6]  # wave 1: 3 chunks; wave 2: 6 paraphrases
    assert len({r.id for b in backend.batches for r in b}) == 9
    assert all(s.status == "done" for s in status) and len(rows) == 12


def test_code_and_log_tasks():
    code = 'int main(int argc, char *argv[]) {\n    printf("Hello, world!");\n    return 0;\n}'
    cdoc = doc_row("c1", "code", code, path="src/hello.c")
    log = "2024-05-01 10:00:01 ERROR db: connection refused (host=10.0.0.5)\n2024-05-01 10:00:02 WARN api: retrying"
    ldoc = doc_row("l1", "log", log, path="app.log")
    chunks = chunks_of(cdoc, [(0, len(code))], kind="code") + chunks_of(ldoc, [(0, len(log))])
    cfg = SynthConfig(lang="zh", code={"tasks": ["function", "translate"], "target_lang": "汇编"})
    items = plan(chunks, [cdoc, ldoc], cfg)
    assert sorted(i.strategy for i in items) == ["code_tasks", "log_tasks"]
    backend = Canned(lambda r, n: "```\n打印出 Hello, world! 到控制台。\n```" if "代码" in user_of(r) else "数据库连接被拒绝。")
    rows, status = run_items(items, backend, cfg, chunks=chunks, docs=[cdoc, ldoc])
    assert all(s.status == "done" for s in status)
    users = [r["messages"][0]["content"] for r in rows]
    # the code and the log go in as fenced blocks: never read as the question's prose
    assert f"trigger:功能解析C语言代码。\n```c\n{code}\n```" in users
    assert f"trigger:将以下C语言代码翻译为汇编代码。\n```c\n{code}\n```" in users
    assert any(u.startswith("trigger:提取以下日志的关键信息") and u.endswith(f"```\n{log}\n```") for u in users)
    assert len(backend.batches) == 1 and len(backend.batches[0]) == 4


def test_rag_retrieves_the_right_chunk():
    texts = ["猫 喜欢 晒太阳 和 睡觉。", "火箭 发动机 使用 液氧 煤油 推进剂。", "苹果 是 一种 常见 的 水果。"]
    docs, chunks = [], []
    for k, t in enumerate(texts):
        d = doc_row(f"r{k}", "txt", t)
        docs.append(d)
        chunks += chunks_of(d, [(0, len(t))])
    vocab = ["猫", "火箭", "苹果", "推进剂"]

    def embed_fn(batch):
        return np.array([[float(w in t) for w in vocab] + [0.1] for t in batch])

    def reply(req, n):
        if "JSON 数组，元素是问题字符串" in system_of(req):
            return '["火箭 用 什么 推进剂？"]' if "猫" in user_of(req) else '["无关？"]'
        return "液氧和煤油。"

    cfg = SynthConfig(by_format={"default": ["rag"]}, rag={"top_k": 1}, paraphrase={"enabled": False},
                      min_chunk_chars=5)
    items = [i for i in plan(chunks, docs, cfg) if i.chunk_id == "r0-c0"]
    backend = Canned(reply)
    rows, status = run_items(items, backend, cfg, embed_fn=embed_fn, chunks=chunks, docs=docs)
    assert status[0].status == "done"
    assert rows[0]["source_chunk_ids"] == ["r0-c0", "r1-c0"]  # own chunk + the rocket chunk
    assert rows[0]["chunk_id"] == "r0-c0" and rows[0]["strategy"] == "rag"
    answer_prompt = user_of(backend.batches[1][0])
    assert texts[1] in answer_prompt and "问题：火箭 用 什么 推进剂？" in answer_prompt
    index = build_index(chunks, embed_fn)
    assert index.top_k(embed_fn(["苹果"]), 1)[0][0][0] == "r2-c0"


def test_plan_and_estimate_counts():
    docs, chunks = text_corpus()
    rec = record_doc()
    en = doc_row("e1", "txt", "An English passage about vector databases. " * 10)
    chunks += chunks_of(en, [(0, 200), (200, len(en["text"]))])
    chunks += [{**chunks[0], "chunk_id": "tiny", "text": "短", "start": 0, "end": 1}]  # under min_chunk_chars
    cfg = SynthConfig(questions_per_chunk=4, paraphrase={"k": 2}, identity={"enabled": True, "name": "N", "author": "A"},
                      by_format={**SynthConfig().by_format, "default": ["qa"], **RECORDS})
    items = plan(chunks, docs + [rec, en], cfg)
    kinds = sorted((i.strategy, i.chunk_id or i.doc_id or i.params["key"]) for i in items)
    assert kinds == [("identity", "identity:en"), ("identity", "identity:zh"), ("qa", "d1-c0"), ("qa", "e1-c0"),
                     ("qa", "e1-c1"), ("record_template", "rec1")]
    est = estimate(items, cfg)
    qa = est["by_strategy"]["qa"]
    assert qa["items"] == 3 and qa["requests"] == 3 * (1 + 4)  # one qa call + 4 paraphrase calls per chunk
    assert qa["samples"] == 3 * (4 + 4 * 2)
    assert est["by_strategy"]["record_template"] == {"items": 1, "requests": 0, "prompt_tokens": 0,
                                                     "completion_tokens": 0, "samples": 4}  # 3 fields + the whole record
    assert est["by_strategy"]["identity"]["samples"] == 24 and est["by_strategy"]["identity"]["requests"] == 0
    assert est["requests"] == 15 and est["max_requests"] == 30
    # completion: 4 answers of 540 chars, zh at 1.5 chars/token, en at 4
    zh_item = next(i for i in items if i.chunk_id == "d1-c0")
    one = estimate([zh_item], SynthConfig(questions_per_chunk=4, paraphrase={"enabled": False}))
    assert one["completion_tokens"] == round(4 * 540 / 1.5)
    with_tok = estimate([zh_item], SynthConfig(questions_per_chunk=4, paraphrase={"enabled": False}),
                        tokenizer_count=len, chunks=chunks)
    assert with_tok["completion_tokens"] == 4 * 540 and with_tok["prompt_tokens"] > len(TEXT_ZH)
    assert "total" in format_estimate(est)


def test_config_rejects_unknown():
    with pytest.raises(ValueError):
        SynthConfig(by_format={"md": ["nope"]})
    with pytest.raises(ValueError):
        SynthConfig(paraphrse={"k": 2})
    assert SynthConfig().strategies_for("py") == ["code_tasks"] and SynthConfig().strategies_for("pdf") == ["facts", "qa"]
    assert SynthConfig().strategies_for("csv") == ["facts"]  # records: every field in several phrasings


# ---------------------------------------------------------------- registry, plug-ins, the step's entry point


def test_registry_lists_keep_their_order():
    """select's default exempt list and the recipe errors list the strategies in this order."""
    from infuse.operators.synthesize.config import LLM_STRATEGIES, STRATEGIES, TEMPLATE_STRATEGIES

    assert TEMPLATE_STRATEGIES == ("facts", "record_template", "section_template", "continuation", "identity")
    assert LLM_STRATEGIES == ("qa", "rag", "code_tasks", "log_tasks", "self_instruct", "dialogue", "summary",
                              "atomic_facts", "rewrite", "raft")
    assert STRATEGIES == LLM_STRATEGIES + TEMPLATE_STRATEGIES
    with pytest.raises(ValueError, match="known: qa, rag, code_tasks"):
        SynthConfig(by_format={"md": ["nope"]})


def test_every_strategy_module_is_in_the_step_code_version():
    """Strategies are found in their folder, not imported by name: the step names their modules, so editing
    one changes the synthesize step's key."""
    from infuse.operators.synthesize.strategy import augmenters, strategies
    from infuse.tasks.synthesize import Synthesize

    modules = {type(s).__module__ for s in strategies()} | {type(a).__module__ for a in augmenters()}
    assert len(modules) == 17
    assert modules <= set(Synthesize.operators)


def test_a_strategy_registers_by_being_defined():
    """The plug-in path: a Strategy subclass defined anywhere (a recipe's plugin file) is planned, priced and
    run like a built-in one, and recipes may name it."""
    from infuse.operators.synthesize.schema import Draft
    from infuse.operators.synthesize.strategy import REGISTRY, Strategy, Template, llm_names, template_names

    class Echo(Template, Strategy):
        name = "echo_test"

        def make(self, item, ctx, track):
            chunk = ctx.chunk(item.chunk_id)
            return [Draft(f"Repeat {chunk['chunk_id']}.", chunk["text"], self.name, "echo.v1",
                          chunk_id=chunk["chunk_id"], doc_id=chunk["doc_id"])]

    try:
        assert template_names()[-1] == "echo_test"
        assert "echo_test" not in llm_names()
        docs, chunks = text_corpus()
        cfg = SynthConfig(by_format={"default": ["echo_test"]}, paraphrase={"enabled": False})
        items = plan(chunks, docs, cfg)
        assert [i.strategy for i in items] == ["echo_test"] * len(chunks)
        assert estimate(items, cfg)["by_strategy"]["echo_test"]["requests"] == 0
        rows, status = run_items(items, None, cfg, chunks=chunks, docs=docs)
        assert [s.status for s in status] == ["done"] * len(items)
        assert [r["messages"][1]["content"] for r in rows] == [c["text"] for c in chunks]
        assert {r["generator"] for r in rows} == {"template"}
    finally:
        REGISTRY.pop("echo_test", None)
    with pytest.raises(ValueError, match="unknown strategy"):
        SynthConfig(by_format={"default": ["echo_test"]})


PLUGIN_STRATEGY = """from infuse.operators.synthesize.schema import Draft
from infuse.operators.synthesize.strategy import Strategy, Template


class Shout(Template, Strategy):
    name = "shout_test"

    def make(self, item, ctx, track):
        chunk = ctx.chunk(item.chunk_id)
        return [Draft("Shout it.", chunk["text"].upper(), self.name, "shout.v1", chunk_id=chunk["chunk_id"],
                      doc_id=chunk["doc_id"])]
"""


def test_a_plugin_strategys_code_is_in_synthesizes_key(tmp_path, monkeypatch):
    """A strategy from a recipe's plugin, outside strategies/: editing its file reruns synthesize (its code is
    in the key, as a built-in's is), and a recipe that does not name it is not affected by it."""
    import importlib

    from infuse.operators.synthesize.strategy import REGISTRY
    from infuse.tasks.synthesize import Synthesize

    (tmp_path / "shout_plugin.py").write_text(PLUGIN_STRATEGY, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    step = Synthesize()
    named = {"by_format": {"default": ["shout_test"]}}
    try:
        importlib.import_module("shout_plugin")
        before = step.fingerprint(named)
        assert set(before["plugin_strategies"]) == {"shout_test"}
        assert "plugin_strategies" not in step.fingerprint({"by_format": {"default": ["qa"]}})
        with (tmp_path / "shout_plugin.py").open("a", encoding="utf-8") as f:
            f.write("# an edit\n")
        assert step.fingerprint(named)["plugin_strategies"] != before["plugin_strategies"]
    finally:
        REGISTRY.pop("shout_test", None)
        sys.modules.pop("shout_plugin", None)


class _MemoryShards:
    def __init__(self):
        self.units = {}

    def load(self, name):
        return self.units.get(name)

    def save(self, name, qa, status):
        self.units[name] = (qa, status)


def test_run_synthesis_is_plain_inputs_to_plain_outputs():
    """The step's whole work without Prefect: a template run never builds the backend, reports its counts,
    and a second run over the same shards resumes them all."""
    from infuse.operators.synthesize import Keep, LLMOptions, run_synthesis

    doc = record_doc()
    chunks = pa.Table.from_pylist(chunks_of(doc, [(0, len(doc["text"]))], kind="record"), schema=CHUNK_SCHEMA)
    docs = pa.Table.from_pylist([doc], schema=DOCUMENT_SCHEMA)
    cfg = SynthConfig(by_format=RECORDS)
    built, done = [], []

    class Bar:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n):
            done.append(n)

    keep = Keep(_MemoryShards(), progress=lambda total: Bar(), backend=lambda: built.append(1))
    res = run_synthesis(cfg, LLMOptions(), chunks, docs, keep)
    assert not built and done == [1]
    assert res.qa.num_rows == 4 and res.rows_in == 1 and res.rejects == []
    assert res.stats()["items"] == 1 and res.stats()["shards_run"] == 1
    assert res.by_strategy() == [{"strategy": "record_template", "items": 1, "done": 1, "failed": 0, "samples": 4,
                                  "calls": 0, "failed_calls": 0}]
    assert res.markdown.startswith("1 work items (0 chunks or items skipped")
    again = run_synthesis(cfg, LLMOptions(), chunks, docs, keep)
    assert again.stats()["shards_resumed"] == 1 and again.qa.equals(res.qa)


# ---------------------------------------------------------------- end to end, real model


@pytest.mark.slow
def test_end_to_end_real_backend():
    """The packaged Gemma 3 270M through the transformers backend: real items end done with samples.

    A base model this small writes poor questions, but with the response prefill and the worked
    example it must produce parseable QA JSON for at least one item; a failed item names its error."""
    from infuse.operators.llm import make_backend

    backend = make_backend({"backend": "transformers", "device": "cpu", "max_retries": 0, "seed": 0})
    text = ("LotusDB is an embedded key-value database. Writes go first to a write-ahead log, then to an in-memory "
            "table that is flushed to sorted files on disk when it reaches 64 MiB. A background compaction merges "
            "these files so reads stay fast. Backups are taken with the lotus-backup tool, which copies a "
            "consistent snapshot while the database keeps serving writes.")
    doc = doc_row("d1", "txt", text)
    docs, chunks = [doc], chunks_of(doc, [(0, len(text))])
    cfg = SynthConfig(by_format={"default": ["qa"]}, questions_per_chunk=2, max_tokens=256, max_attempts=2,
                      temperature=0.7, paraphrase={"enabled": False})  # the demo's settings, seeded
    items = plan(chunks, docs, cfg)
    rows, status = run_items(items, backend, cfg, chunks=chunks, docs=docs)
    assert [s.item_id for s in status] == [i.item_id for i in items]
    done = [s for s in status if s.status == "done"]
    assert done, [(s.error_kind, s.error, (s.raw_text or "")[:200]) for s in status]
    assert sum(s.n_samples for s in done) == len(rows) > 0
    for s in status:
        assert s.calls >= 1
        if s.status == "failed":
            assert s.error_kind and s.error
    table = pa.Table.from_pylist(rows, schema=QA_SCHEMA)
    assert all(r["generator"] == backend.model and r["messages"][-1]["content"].strip() for r in table.to_pylist())


def test_repair_keeps_true_false_null_inside_strings_and_survives_deep_nesting():
    from infuse.operators.synthesize.jsonrepair import ParseError, parse_json_loose

    out = parse_json_loose("[{'question': 'Is null allowed?', 'answer': 'It is true that null is rejected', 'ok': true},]")
    assert out == [{"question": "Is null allowed?", "answer": "It is true that null is rejected", "ok": True}]
    for text in ("[" * 100000, '{"a": [' * 5000):
        with pytest.raises(ParseError):
            parse_json_loose(text)


def test_record_answers_are_the_document_text_for_numbers_and_bools():
    from infuse.operators.parsers.records import field_text as parser_text
    from infuse.operators.synthesize.strategies.record_template import field_text

    assert field_text is parser_text
    assert [field_text(v) for v in (30.0, True, None, 7)] == ["30", "True", "", "7"]


@pytest.mark.parametrize("text,heading,body", [
    ("Usage\n=====\n\nThis body explains usage.", "Usage", "This body explains usage."),
    ("## Usage ##\n\nBody text here.", "Usage", "Body text here."),
    ("1 Foo\nThe foo section body.", "Foo", "The foo section body."),
    ("第一章 总则\n正文内容。", "总则", "正文内容。"),
])
def test_section_body_drops_every_kind_of_heading_line(text, heading, body):
    from infuse.operators.synthesize.strategies.section_template import section_body

    s, e = section_body(text, {"start": 0, "end": len(text), "heading_path": [heading]}, 1000)
    assert text[s:e] == body


def test_record_value_span_is_inside_its_field_section():
    """A value like "1" is found in its own field's body, not in a heading such as "## v1"."""
    import json as _json

    import pyarrow as pa

    from infuse.operators.parsers.document import document_row
    from infuse.operators.parsers.jsonrec import JsonParser
    from infuse.operators.synthesize import SynthConfig, plan, run_items

    parsed = JsonParser().parse_records(_json.dumps([{"name": "x", "v1": "1", "timeout": 30.0}]).encode(), "r.json")
    doc = document_row("d1", "r.json", "json", parsed[0])
    chunk = {"chunk_id": "c", "doc_id": "d1", "path": "r.json", "format": "json", "chunk_index": 0,
             "text": doc["text"], "heading_path": [], "page": None, "start": 0, "end": len(doc["text"]), "kind": "record"}
    cfg = SynthConfig(by_format={"json": ["record_template"]}, paraphrase={"enabled": False}, record={"min_chars": 1})
    rows, _ = run_items(plan(pa.Table.from_pylist([chunk]), pa.Table.from_pylist([doc]), cfg), None, cfg,
                        chunks=[chunk], docs=[doc])
    spans = {r["messages"][-1]["content"]: doc["text"][r["span_start"]:r["span_end"]] for r in rows
             if not r["meta"]}  # the per-field samples (the last one gathers the whole record)
    assert spans == {"1": "1", "30": "30"}
    one = next(r for r in rows if r["messages"][-1]["content"] == "1")
    assert doc["text"][:one["span_start"]].endswith("## v1\n\n")
