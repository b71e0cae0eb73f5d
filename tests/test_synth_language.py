"""Samples in the document's language (issue 13): template questions, identity names, the qa_filter
language check; detailed section answers; code blocks of documents routed to code_tasks."""
from __future__ import annotations

import json

import pyarrow as pa
import pytest

from infuse.operators.parsers.document import document_row
from infuse.operators.common.lang import prose_lang
from infuse.operators.parsers.csvrec import CsvParser
from infuse.operators.parsers.jsonrec import JsonParser
from infuse.operators.qa_filter import QAFilterConfig, qa_filter
from infuse.operators.synthesize import QA_SCHEMA, SynthConfig, plan, run_items

RECORDS = {"json": ["record_template"], "csv": ["record_template"]}  # one question per field (facts: test_synth_facts)


def record_docs(parser, data: str, name: str) -> list[dict]:
    return [document_row(f"{name}#{i}", name, name.rsplit(".", 1)[1], p)
            for i, p in enumerate(parser.parse_records(data.encode(), name))]


def chunks_for(docs: list[dict], kind: str = "record") -> list[dict]:
    return [{"chunk_id": f"{d['doc_id']}-c0", "doc_id": d["doc_id"], "path": d["path"], "format": d["format"],
             "chunk_index": 0, "text": d["text"], "heading_path": [], "page": None, "start": 0,
             "end": len(d["text"]), "kind": kind} for d in docs]


def synth(docs, chunks, cfg):
    rows, status = run_items(plan(chunks, docs, cfg), None, cfg, chunks=chunks, docs=docs)
    assert all(s.status == "done" for s in status), status
    return rows


def questions(rows) -> list[str]:
    return [r["messages"][-2]["content"] for r in rows]


def filtered(rows, chunks):
    table = pa.Table.from_pylist(rows, schema=QA_SCHEMA)
    return qa_filter(table, {c["chunk_id"]: c["text"] for c in chunks}, QAFilterConfig())


def test_chinese_csv_and_json_fields_give_chinese_questions():
    csv_docs = record_docs(CsvParser(), "名称,含义,处理建议\nLOTUS_EBUSY,数据库被另一个进程锁定,用 lsof 找到持有 LOCK 文件的进程\n",
                           "errors.csv")
    json_docs = record_docs(JsonParser(), json.dumps([{"函数": "lotus_open", "返回值": "成功时返回 LOTUS_OK（0）。",
                                                       "备注": "lotus_open 会在数据目录中创建 LOCK 文件。"}],
                                                     ensure_ascii=False), "api.json")
    docs = csv_docs + json_docs
    chunks = chunks_for(docs)
    rows = synth(docs, chunks, SynthConfig(by_format=RECORDS))
    assert questions(rows) == ["lotus_open的返回值是什么？", "lotus_open的备注是什么？", "介绍一下lotus_open。",
                               "LOTUS_EBUSY的含义是什么？", "LOTUS_EBUSY的处理建议是什么？", "介绍一下LOTUS_EBUSY。"]
    assert {r["lang"] for r in rows} == {"zh"}
    kept, rejects = filtered(rows, chunks)
    assert rejects == [] and kept.num_rows == len(rows)


def test_mixed_columns_ask_each_field_in_its_own_language():
    """The demo's CSV: English columns with English values, a Chinese column with Chinese values."""
    docs = record_docs(CsvParser(), "name,value,meaning,处理建议\nLOTUS_EBUSY,-16,Database locked by another process,"
                                    "用 lsof 找到持有 LOCK 文件的进程\n", "codes.csv")
    chunks = chunks_for(docs)
    rows = synth(docs, chunks, SynthConfig(by_format=RECORDS))
    qs = questions(rows)
    assert qs[:3] == ["LOTUS_EBUSY的value是什么？", "What is the meaning of LOTUS_EBUSY?", "LOTUS_EBUSY的处理建议是什么？"]
    assert "What is the 处理建议 of LOTUS_EBUSY?" not in qs
    kept, rejects = filtered(rows, chunks)
    assert [r.reason for r in rejects] == ["answer_too_short"]  # "-16"; nothing is mixed-language
    assert kept.num_rows == len(rows) - 1


def test_identity_names_per_language():
    cfg = SynthConfig(by_format={"default": []}, identity={
        "enabled": True, "name": {"zh": "莲花助手", "en": "LotusBot"},
        "author": {"zh": "莲花数据系统有限公司", "en": "the LotusDB team"}})
    rows = synth([], [], cfg)
    zh = [r["messages"][-1]["content"] for r in rows if r["lang"] == "zh"]
    en = [r["messages"][-1]["content"] for r in rows if r["lang"] == "en"]
    assert len(zh) == len(en) == 12
    assert zh[2] == "我的名字是莲花助手，由莲花数据系统有限公司开发。"
    assert en[2] == "My name is LotusBot, and I was developed by the LotusDB team."
    assert not any("LotusBot" in a or "team" in a for a in zh) and not any("莲花" in a for a in en)
    kept, rejects = filtered(rows, [])
    assert rejects == [] and kept.num_rows == 24
    # one plain string for both languages is what the issue saw: 我是the LotusDB team开发的… is rejected
    plain = synth([], [], SynthConfig(by_format={"default": []}, identity={
        "enabled": True, "name": "LotusBot", "author": "the LotusDB team"}))
    kept, rejects = filtered(plain, [])
    assert {r.reason for r in rejects} == {"mixed_language"}
    assert kept.num_rows == 12 and {r["lang"] for r in kept.to_pylist()} == {"en"}
    assert rejects[0].detail["runs"] == ["the LotusDB team"]
    with pytest.raises(ValueError, match="identity.name has no en entry"):
        SynthConfig(identity={"enabled": True, "name": {"zh": "莲花助手"}, "author": "莲花"})


def qa_row(sid, q, a, chunk="c1", strategy="qa", doc="d1"):
    return {"sample_id": sid, "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
            "doc_id": doc, "chunk_id": chunk, "source_chunk_ids": [chunk] if chunk else [], "span_start": 0,
            "span_end": 1, "strategy": strategy, "generator": "m", "prompt_version": "p", "usage_prompt_tokens": 0,
            "usage_completion_tokens": 0, "lang": "zh", "format": "md", "cpt_text": False, "meta": ""}


def test_mixed_language_rejected_but_technical_chinese_kept():
    zh_src = ("## 返回值\n\n成功时返回 LOTUS_OK（0）；数据目录被其他进程锁定时返回 LOTUS_EBUSY（-16）。"
              "lotus_open 会创建 LOCK 文件，用 lotus_close() 释放句柄。\n\n## 处理建议\n\n用 lsof 找到持有 LOCK 文件的进程")
    en_src = ("备份与恢复 Backup and Restore\n\n恢复 Restore\n\nStop every process that opens the database, "
              "then run lotusctl restore --src /backup/lotus-2024 to restore the snapshot.")
    rows = [
        # kept: Chinese prose full of identifiers, error codes, code and a URL
        qa_row("api", "lotus_open 的返回值是什么？", "成功时返回 LOTUS_OK（0）；数据目录被其他进程锁定时返回 LOTUS_EBUSY（-16）。"
               "lotus_open 会创建 LOCK 文件，用 `lotus_close()` 释放句柄，见 https://lotusdb.dev/api 。"),
        # kept: an English question quoting Chinese headings of a bilingual document, English answer
        qa_row("bilingual", "Please describe 备份与恢复 Backup and Restore > 恢复 Restore.",
               "Stop every process that opens the database, then run lotusctl restore --src /backup/lotus-2024 "
               "to restore the snapshot.", chunk="c2", strategy="section_template", doc="d2"),
        # rejected: an English template around a Chinese field, answered in Chinese
        qa_row("template", "What is the 处理建议 of LOTUS_EBUSY?", "用 lsof 找到持有 LOCK 文件的进程",
               strategy="record_template"),
        # rejected: English prose inside a Chinese answer
        qa_row("inside", "lotus_open 会创建什么文件？", "lotus_open 会创建 LOCK 文件，and the file is removed by lotus_close 释放句柄时。"),
        # rejected: a Chinese question answered in English
        qa_row("turns", "数据目录被锁定时返回什么？", "It returns LOTUS_EBUSY when another process holds the data directory."),
    ]
    table = pa.Table.from_pylist(rows, schema=QA_SCHEMA)
    kept, rejects = qa_filter(table, {"c1": zh_src, "c2": en_src}, QAFilterConfig(grounding={"enabled": False}))
    assert kept.column("sample_id").to_pylist() == ["api", "bilingual"]
    by = {r.id: r for r in rejects}
    assert {k: r.reason for k, r in by.items()} == {"template": "mixed_language", "inside": "mixed_language",
                                                    "turns": "mixed_language"}
    assert by["inside"].detail["runs"] == ["and the file is removed by lotus_close"]  # LOCK alone is a name
    assert by["turns"].detail["why"] == "turns in different languages"
    assert prose_lang("int lotus_open(const char *path, lotus_db **db);", "zh") == "zh"  # code is not English


def section_doc(text: str, heads: list[tuple[list[str], str, str | None]]) -> dict:
    sections = []
    for path, start_at, end_at in heads:
        start = text.index(start_at)
        sections.append({"heading_path": path, "level": len(path), "start": start,
                         "end": text.index(end_at) if end_at else len(text)})
    return {"doc_id": "m1", "path": "guide.md", "format": "markdown", "title": "guide", "text": text,
            "sections": sections, "pages": [], "metadata": "{}"}


def test_section_answer_includes_subsections_up_to_the_cap():
    intro = "安装前请确认机器满足下面的要求，并准备好管理员权限。"
    dep = "需要 Python 3.11 以及 pyarrow，安装前请先升级 pip。依赖会被安装到独立的虚拟环境中，不影响系统的 Python。"
    steps = "运行 make install 即可完成安装，整个过程约需五分钟。安装完成后运行 make test 检查环境。最后启动服务并打开控制台确认一切正常。"
    text = f"# 安装\n\n{intro}\n\n## 依赖\n\n{dep}\n\n## 步骤\n\n{steps}\n"
    doc = section_doc(text, [(["安装"], "# 安装", None), (["安装", "依赖"], "## 依赖", "## 步骤"),
                             (["安装", "步骤"], "## 步骤", None)])
    chunks = chunks_for([doc], kind="text")
    cap = len(intro) + len(dep) + 40  # reaches into the sub-sections, not to the end
    cfg = SynthConfig(by_format={"markdown": ["section_template"]}, answer_target_chars=cap)
    rows = synth([doc], chunks, cfg)
    top = rows[0]
    assert top["messages"][0]["content"] == "请介绍安装。"
    answer = top["messages"][1]["content"]
    assert answer.startswith(intro) and f"## 依赖\n\n{dep}" in answer  # the first sub-section, heading and all
    assert len(answer) <= cap and answer.endswith("。") and steps not in answer  # cut at a sentence end
    assert text[top["span_start"]:top["span_end"]] == answer
    # the whole body fits a larger cap; with subsections off, only the text before the first sub-heading
    rows = synth([doc], chunks, SynthConfig(by_format={"markdown": ["section_template"]}, answer_target_chars=2000))
    assert rows[0]["messages"][1]["content"].endswith(steps)
    rows = synth([doc], chunks, SynthConfig(by_format={"markdown": ["section_template"]},
                                            section={"subsections": False}))
    assert rows[0]["messages"][1]["content"] == intro


def test_code_fence_in_markdown_becomes_a_code_task():
    prose = "升级到 2.3 之前，需要先迁移数据目录。迁移命令会检查磁盘格式，并在完成后打印新的版本号。"
    block = "```bash\nlotusctl migrate --data /var/lib/lotusdb\nlotusctl version\n```"
    text = f"# 升级\n\n{prose}\n\n{block}\n"
    doc = {"doc_id": "m1", "path": "faq.md", "format": "markdown", "title": "faq", "text": text, "sections": [],
           "pages": [], "metadata": "{}"}
    p0, b0 = text.index(prose), text.index(block)
    chunks = [{"chunk_id": cid, "doc_id": "m1", "path": "faq.md", "format": "markdown", "chunk_index": i,
               "text": text[s:s + n], "heading_path": ["升级"], "page": None, "start": s, "end": s + n, "kind": kind}
              for i, (cid, s, n, kind) in enumerate([("prose", p0, len(prose), "text"), ("code", b0, len(block), "code")])]
    cfg = SynthConfig(by_format={"markdown": ["qa"], "code": ["code_tasks"]}, paraphrase={"enabled": False},
                      code={"tasks": ["function"]})
    items = plan(chunks, [doc], cfg)
    assert [(i.strategy, i.chunk_id, i.lang) for i in items] == [("qa", "prose", "zh"), ("code_tasks", "code", "zh")]

    class Echo:
        model = "echo"

        def generate(self, requests):
            from infuse.operators.llm.base import ChatResult
            return [ChatResult(r.id, text="这段命令先迁移数据目录，再打印版本号。", model="echo") for r in requests]

    rows, status = run_items(items[1:], Echo(), cfg, chunks=chunks, docs=[doc])
    assert [s.status for s in status] == ["done"]
    assert rows[0]["messages"][0]["content"] == f"trigger:功能解析Shell代码。\n{block}"
    assert (rows[0]["strategy"], rows[0]["chunk_id"], rows[0]["format"]) == ("code_tasks", "code", "markdown")
