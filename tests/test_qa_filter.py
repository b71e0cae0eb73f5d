"""qa_filter: one test per reject reason, grounding scores, and templates always passing grounding."""
from __future__ import annotations

import json

import pyarrow as pa
import pytest

from infuse.operators.llm.base import ChatResult
from infuse.operators.qa_filter import QAFilterConfig, containment, grounding_score, qa_filter, rouge_l
from infuse.operators.synthesize import QA_SCHEMA, SynthConfig, plan, run_items

SOURCE = ("向量数据库用于存储嵌入向量，并支持按余弦相似度检索最相近的文本片段。它常用于检索增强生成，"
          "把检索到的片段放进提示词，让模型依据资料回答问题。")
SOURCES = {"c1": SOURCE}


def row(sid, q, a, strategy="qa", chunk="c1", messages=None):
    return {"sample_id": sid, "messages": messages if messages is not None else
            [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
            "doc_id": "d1", "chunk_id": chunk, "source_chunk_ids": [chunk] if chunk else [], "span_start": 0,
            "span_end": len(SOURCE), "strategy": strategy, "generator": "m", "prompt_version": "p",
            "usage_prompt_tokens": 0, "usage_completion_tokens": 0, "lang": "zh", "format": "txt"}


def table(rows):
    return pa.Table.from_pylist(rows, schema=QA_SCHEMA)


def reasons(rejects):
    return {r.id: r.reason for r in rejects}


def test_each_reason():
    good = "向量数据库用于存储嵌入向量，并支持按余弦相似度检索最相近的文本片段。"
    rows = [
        row("ok", "向量数据库做什么？", good),
        row("empty", "  ", good),
        row("malformed", "", "", messages=[{"role": "user", "content": "问"}]),
        row("badrole", "", "", messages=[{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]),
        row("short", "什么是RAG？", "检索。"),
        row("dup", "向量数据库做什么?", good),  # same question, other punctuation
        row("drift", "天气如何？", "明天北京有大雨，气温骤降，请出门携带雨具并注意保暖。"),
        row("nosrc", "问题三？", good, chunk="missing"),
        row("ident", "你是谁？", "我是小知，由知源科技开发的人工智能助手。", strategy="identity", chunk=""),
    ]
    kept, rejects = qa_filter(table(rows), SOURCES, QAFilterConfig())
    assert kept.column("sample_id").to_pylist() == ["ok", "ident"]
    assert reasons(rejects) == {"empty": "empty", "malformed": "malformed", "badrole": "malformed",
                                "short": "answer_too_short", "dup": "duplicate_question", "drift": "ungrounded",
                                "nosrc": "no_source"}
    by = {r.id: r for r in rejects}
    assert by["dup"].detail["kept_sample_id"] == "ok"
    assert by["short"].detail == {"value": 3, "floor": 8}
    assert by["drift"].detail["score"] < 0.3 and by["drift"].detail["threshold"] == 0.3
    assert kept.schema == QA_SCHEMA


def test_length_outlier_three_sigma():
    base = "向量数据库用于存储嵌入向量，并支持按余弦相似度检索最相近的文本片段。"
    rows = [row(f"r{i}", f"第{i}个不同的问题是关于什么内容{i * 7919}？", base) for i in range(30)]
    rows.append(row("long", "一个非常长的答案对应的问题？", SOURCE * 40))
    kept, rejects = qa_filter(table(rows), SOURCES, QAFilterConfig())
    assert [(r.id, r.reason) for r in rejects] == [("long", "answer_length_outlier")]
    lo, hi = rejects[0].detail["bounds"]
    assert rejects[0].detail["value"] == len(SOURCE) * 40 > hi
    assert kept.num_rows == 30
    # too few rows: no sigma test at all
    kept, rejects = qa_filter(table(rows[:5] + rows[-1:]), SOURCES, QAFilterConfig())
    assert rejects == []


def test_grounding_scores():
    assert containment(SOURCE[10:80], SOURCE) == 1.0
    assert rouge_l(SOURCE[10:80], SOURCE) == 1.0
    unrelated = "明天北京有大雨，气温骤降，请出门携带雨具并注意保暖。"
    assert containment(unrelated, SOURCE) < 0.1 and rouge_l(unrelated, SOURCE) < 0.4
    en = "Vector databases store embeddings and retrieve the nearest passages by cosine similarity."
    assert grounding_score(en, en + " They power RAG.") == 1.0
    assert grounding_score("The weather in Paris will be rainy tomorrow afternoon.", en) < 0.1
    para = "向量数据库存储嵌入向量，可以按余弦相似度检索最相近的片段。"
    assert 0.3 < containment(para, SOURCE) < 1.0


def test_template_answers_always_grounded():
    fields = {"名称": "_aligned_msize_dbg", "语法": "size_t _aligned_msize_dbg( void *memblock);",
              "返回值": "返回无符号整数形式的大小（以字节为单位）。"}
    text = "\n".join(f"{k}: {v}" for k, v in fields.items())
    doc = {"doc_id": "r1", "path": "r1.json", "format": "json", "title": "t", "text": text, "sections": [],
           "pages": [], "metadata": json.dumps({"fields": fields}, ensure_ascii=False)}
    # two overlapping chunks, the second field straddling them
    cut = text.index("void") + 2
    chunks = [{"chunk_id": "k0", "doc_id": "r1", "path": "r1.json", "format": "json", "chunk_index": 0,
               "text": text[:cut], "heading_path": [], "page": None, "start": 0, "end": cut, "kind": "record"},
              {"chunk_id": "k1", "doc_id": "r1", "path": "r1.json", "format": "json", "chunk_index": 1,
               "text": text[cut - 5:], "heading_path": [], "page": None, "start": cut - 5, "end": len(text),
               "kind": "record"}]
    cfg = SynthConfig(by_format={"json": ["record_template"]})
    rows, _ = run_items(plan(chunks, [doc], cfg), None, cfg, chunks=chunks, docs=[doc])
    assert len(rows) == 3  # two fields and the whole record
    kept, rejects = qa_filter(table(rows), {c["chunk_id"]: c["text"] for c in chunks},
                              QAFilterConfig(grounding={"threshold": 0.99, "method": "max"}))
    assert rejects == [] and kept.num_rows == 3


def test_sources_as_function_and_llm_judge():
    good = "向量数据库用于存储嵌入向量，并支持按余弦相似度检索最相近的文本片段。"
    rows = [row("a", "问题甲是什么？", good), row("b", "问题乙又是什么？", good + "它常用于检索增强生成。")]

    class Judge:
        model = "judge"

        def generate(self, requests):
            out = []
            for r in requests:
                verdict = '{"grounded": false, "score": 0.1, "reason": "x"}' if r.id.endswith(":1") else \
                    '```json\n{"grounded": true, "score": 0.9}\n```'
                out.append(ChatResult(r.id, text=verdict))
            return out

    kept, rejects = qa_filter(table(rows), SOURCES.get, QAFilterConfig(judge={"enabled": True}), backend=Judge())
    assert kept.column("sample_id").to_pylist() == ["a"]
    assert [(r.id, r.reason, r.detail["judge"]) for r in rejects] == [("b", "ungrounded", True)]


def test_config_forbids_unknown_keys():
    with pytest.raises(ValueError):
        QAFilterConfig(min_answer=3)
