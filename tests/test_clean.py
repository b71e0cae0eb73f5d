"""clean: data-juicer mappers through the batched API, with Chinese and Markdown left intact."""
from __future__ import annotations

import pyarrow as pa
import pytest

from infuse.operators.common import dj
from infuse.operators.clean import Cleaner, CleanConfig
from infuse.operators.clean.ops import INFUSE_MAPPERS

ZH = "中文，测试：问题？好！（括号）【标题】《书名》“引号”。顿号、分号；省略……"
MD = "# 第一章 安装\n\n## Install the tool\n\nRun it — see “docs”… then continue.\n"
CODE = "# compute the total\ndef total(xs):\n\treturn sum(xs)  # add up\n"
CODE_LICENSE = "#!/usr/bin/env python\n# Copyright 2020 ACME Corp.\n# Licensed under MIT\n\nimport os\n# keep me\n"


def chunks(rows: list[tuple[str, str, str]]) -> pa.Table:
    """rows of (text, kind, format)."""
    return pa.table({
        "chunk_id": [f"c{i}" for i in range(len(rows))],
        "text": [r[0] for r in rows],
        "kind": [r[1] for r in rows],
        "format": [r[2] for r in rows],
    })


def texts(t: pa.Table) -> list[str]:
    return t.column("text").to_pylist()


def test_default_clean_keeps_chinese_punctuation_headings_and_code_comments():
    out, rejects = Cleaner(CleanConfig.default()).process_batch(
        chunks([(ZH, "text", "md"), (MD, "text", "md"), (CODE, "code", "py")])
    )
    assert rejects == []
    assert texts(out) == [
        ZH,  # every full-width mark survives (dj's punctuation_normalization and ftfy would make them ASCII)
        # headings survive (dj's clean_copyright would drop leading '#' lines); English gets dj's table
        "# 第一章 安装\n\n## Install the tool\n\nRun it  -  see \"docs\"... then continue.",
        CODE.rstrip(),  # comment, tab and indentation intact
    ]


def test_default_clean_removes_emails_links_and_licence_headers():
    zh = "请联系 admin@example.com 或访问 https://example.com/docs。后面的句子保留。"
    out, _ = Cleaner().process_batch(chunks([(zh, "text", "md"), (CODE_LICENSE, "code", "py")]))
    assert texts(out) == [
        "请联系  或访问 。后面的句子保留。",  # the URL stops at the Chinese full stop
        "#!/usr/bin/env python\nimport os\n# keep me",
    ]


def test_text_emptied_by_clean_is_rejected_with_the_op():
    out, rejects = Cleaner().process_batch(
        chunks([("  https://example.com/only-a-link  ", "text", "md"), ("   ", "text", "md"), ("keep", "text", "md")])
    )
    assert texts(out) == ["keep"]
    assert [(r.id, r.reason, r.detail["op"]) for r in rejects] == [
        ("c0", "emptied_by_clean", "infuse_clean_links"),
        ("c1", "emptied_by_clean", None),
    ]


def test_a_row_an_op_fails_on_is_rejected_and_the_rest_cleaned():
    def fail_on_boom(xs, kinds, params):
        if any("boom" in x for x in xs):
            raise ValueError("cannot clean boom")
        return [x.upper() for x in xs]

    INFUSE_MAPPERS["test_fail_on_boom"] = fail_on_boom
    try:
        cfg = CleanConfig(ops=[{"name": "test_fail_on_boom"}])
        out, rejects = Cleaner(cfg).process_batch(chunks([("a", "text", "md"), ("boom", "text", "md")]))
    finally:
        del INFUSE_MAPPERS["test_fail_on_boom"]
    assert texts(out) == ["A"]
    assert [(r.id, r.reason) for r in rejects] == [("c1", "clean_failed")]
    assert "cannot clean boom" in rejects[0].message


def test_dj_ops_that_damage_chinese_are_gated_to_english_automatically():
    cfg = CleanConfig(ops=[{"name": "punctuation_normalization_mapper"}, {"name": "clean_copyright_mapper"}])
    cleaner = Cleaner(cfg)
    assert len(cleaner.notes) == 2
    out, _ = cleaner.process_batch(chunks([(ZH, "text", "md"), ("Hello，world！", "text", "md"), (MD, "text", "md")]))
    # MD is mostly English (5 CJK letters of ~40), so the table applies there; its headings stay
    assert texts(out) == [ZH, "Hello,world!", MD.replace("—", " - ").replace("“", '"').replace("”", '"').replace("…", "...")]


def test_explicit_gate_overrides_auto_gate():
    cfg = CleanConfig(ops=[{"name": "punctuation_normalization_mapper", "only_lang": ["zh", "en"]}])
    out, _ = Cleaner(cfg).process_batch(chunks([("好，的。", "text", "md")]))
    assert texts(out) == ["好,的."]


def test_format_and_kind_gates():
    cfg = CleanConfig(ops=[{"name": "clean_email_mapper", "only_formats": ["txt"]}])
    out, _ = Cleaner(cfg).process_batch(chunks([("mail a@b.com", "text", "txt"), ("mail a@b.com", "text", "md")]))
    assert texts(out) == ["mail ", "mail a@b.com"]


def test_unknown_op_names_close_matches():
    with pytest.raises(ValueError, match="did you mean clean_email_mapper"):
        CleanConfig(ops=[{"name": "clean_emial_mapper"}])
    with pytest.raises(ValueError, match="is a data-juicer filter"):
        CleanConfig(ops=[{"name": "text_length_filter"}])


def test_ops_that_need_network_are_refused():
    with pytest.raises(dj.DjAssetError):
        Cleaner(CleanConfig(ops=[{"name": "nlpaug_en_mapper"}]))


def test_provenance_after_clean_spans_point_at_the_documents_own_characters():
    """Clean drops an email and a URL, straightens quotes and collapses spaces: a span found in the cleaned
    chunk still maps to document text that covers it (issue 13, item 9)."""
    from infuse.operators.chunk.chunker import ChunkConfig, chunk_document
    from infuse.operators.parsers.document import CHUNK_SCHEMA, ParsedDoc, document_row
    from infuse.operators.common.provenance import to_original
    from infuse.operators.synthesize.spans import chunk_span

    text = ("Write to ops@lotus.example or see https://lotus.example/docs/backup for the “backup” guide.   "
            "Stop   every writer before you copy the data directory.\n\n请联系 admin@example.com 获取帮助。"
            "恢复之前必须先停止服务器。")
    doc = document_row("d" * 64, "g.md", "markdown", ParsedDoc(title="g", text=text))
    rows = chunk_document(doc, ChunkConfig())
    out, rejects = Cleaner().process_batch(pa.Table.from_pylist(rows, schema=CHUNK_SCHEMA))
    cleaned = out.to_pylist()
    assert not rejects and cleaned[0]["text"] != text[cleaned[0]["start"] : cleaned[0]["end"]]
    assert all(c["offset_map"] for c in cleaned), "every changed chunk has its map"
    [whole] = cleaned
    for support in ("Stop every writer before you copy the data directory.", 'the "backup" guide',
                    "恢复之前必须先停止服务器。", "获取帮助"):
        s, e = chunk_span(whole, support)
        original = text[s:e]
        assert " ".join(original.split()).replace("“", '"').replace("”", '"') == support, (support, original)
    s, e = to_original(whole, 0, len(whole["text"]))
    assert (s, e) == (whole["start"], whole["end"]), "the whole cleaned chunk maps to the whole original chunk"
    s, e = chunk_span(whole, "for the")  # where the URL was removed just before: the span reaches back over it
    assert text[s:e] == "for the" or text[s:e].endswith("for the")
    unchanged = {"start": 10, "end": 20, "offset_map": None, "text": "x" * 10}
    assert to_original(unchanged, 2, 5) == (12, 15)
