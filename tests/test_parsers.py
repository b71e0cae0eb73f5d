"""Every parser on real files: fixtures built here with the real libraries, plus examples/."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import docx
import pytest
from fpdf import FPDF
from openpyxl import Workbook
from pptx import Presentation
from pypdf import PdfReader, PdfWriter

from infuse.operators.common.base import OperatorError
from infuse.operators.parsers.document import Page
from infuse.operators.parsers import PARSERS, parser_for
from infuse.operators.parsers.textdecode import decode_text

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

ZH = ("莲花数据库是一款嵌入式键值数据库，适合在资源受限的设备上运行。安装之前，请确认系统已经安装了编译器和构建工具。"
      "如果遇到权限问题，请使用管理员账户重新执行安装命令。")
ZH_TRAD = ("蓮花資料庫是一款嵌入式鍵值資料庫，適合在資源受限的裝置上執行。安裝之前，請確認系統已經安裝了編譯器和建置工具。"
           "如果遇到權限問題，請使用管理員帳戶重新執行安裝命令。")


def parse(name: str, data: bytes):
    parser = parser_for(name)
    assert parser is not None, name
    return parser.parse(data, name)


def heading_paths(doc) -> list[list[str]]:
    return [s.heading_path for s in doc.sections]


def section_text(doc, path: list[str]) -> str:
    s = next(s for s in doc.sections if s.heading_path == path)
    return doc.text[s.start : s.end]


# ------------------------------------------------------------------ registry
def test_registry_picks_by_extension_case_insensitive():
    assert parser_for("a/B.PDF").format == "pdf"
    assert parser_for("x.Md").format == "markdown"
    assert parser_for("data.jsonl").format == "jsonl"
    assert parser_for("main.rs").format == "code"
    assert parser_for("notes.rtf") is None
    assert parser_for("Makefile") is None
    multi = {p.format for p in PARSERS if getattr(p, "multi", False)}
    assert multi == {"json", "jsonl", "csv", "xlsx"}


# ------------------------------------------------------------------ PDF
def _fpdf_with_outline() -> bytes:
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    pdf.add_page()
    pdf.start_section("Install", level=0)
    pdf.cell(text="Install")
    pdf.ln(10)
    pdf.multi_cell(w=0, text="Download the package first.")
    pdf.start_section("Linux", level=1)
    pdf.cell(text="Linux")
    pdf.ln(10)
    pdf.multi_cell(w=0, text="Run apt install lotusdb.")
    pdf.add_page()
    pdf.start_section("Usage", level=0)
    pdf.cell(text="Usage")
    pdf.ln(10)
    pdf.multi_cell(w=0, text="Open the database with lotus_open.")
    return bytes(pdf.output())


def test_pdf_pages_and_outline_sections():
    doc = parse("guide.pdf", _fpdf_with_outline())
    assert [p.page for p in doc.pages] == [1, 2]
    assert heading_paths(doc) == [["Install"], ["Install", "Linux"], ["Usage"]]
    assert section_text(doc, ["Install", "Linux"]).strip() == "Linux\nRun apt install lotusdb."
    usage = next(s for s in doc.sections if s.heading_path == ["Usage"])
    assert usage.start == doc.pages[1].start  # the bookmark's page
    assert doc.text[doc.pages[1].start : doc.pages[1].end] == "Usage\nOpen the database with lotus_open."
    install = doc.sections[0]
    assert install.end == usage.start  # spans its subsection


def test_pdf_example_bilingual_outline_and_pages():
    doc = parse("lotusdb_install_guide.pdf", (EXAMPLES / "lotusdb_install_guide.pdf").read_bytes())
    assert doc.title == "LotusDB 安装指南 Installation Guide"
    assert [p.page for p in doc.pages] == [1, 2, 3]
    assert heading_paths(doc) == [
        ["1 概述 Overview"], ["2 系统要求 System Requirements"], ["3 安装 Installation"],
        ["3 安装 Installation", "3.1 Linux"], ["3 安装 Installation", "3.2 Windows"],
        ["4 配置 Configuration"], ["5 故障排查 Troubleshooting"],
    ]
    linux = section_text(doc, ["3 安装 Installation", "3.1 Linux"])
    assert linux.startswith("3.1 Linux\nDebian / Ubuntu: sudo apt install ./lotusdb_2.3.0_amd64.deb")
    assert "默认数据目录为 /var/lib/lotusdb" in linux
    page3 = doc.text[doc.pages[2].start : doc.pages[2].end]
    assert page3.startswith("4 配置 Configuration\n主要配置项写在 lotus.toml 中")
    assert "LOTUS_EBUSY（-16）" in page3


def test_pdf_encrypted_with_empty_user_password_is_read():
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(_fpdf_with_outline())))
    writer.encrypt(user_password="", owner_password="owner-only", algorithm="RC4-128")
    buf = io.BytesIO()
    writer.write(buf)
    doc = parse("locked.pdf", buf.getvalue())
    assert "Run apt install lotusdb." in doc.text


def test_pdf_encrypted_with_password_and_broken_pdf_raise():
    with pytest.raises(OperatorError) as e:
        parse("x.pdf", (EXAMPLES / "rejects" / "encrypted_guide.pdf").read_bytes())
    assert e.value.reason == "encrypted"
    with pytest.raises(OperatorError) as e:
        parse("x.pdf", b"%PDF-1.4\nthis is not a pdf at all")
    assert e.value.reason == "corrupt"


# ------------------------------------------------------------------ DOCX
def _docx_bytes() -> bytes:
    d = docx.Document()
    d.add_heading("部署指南", level=0)
    d.add_paragraph("简介段落。")
    d.add_heading("安装 Install", level=1)
    d.add_paragraph("先下载安装包。")
    d.add_heading("Linux", level=2)
    table = d.add_table(rows=2, cols=2)
    for r, row in enumerate([("系统", "命令"), ("Debian", "apt install lotusdb")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    d.add_paragraph("表格之后的段落。")
    d.add_paragraph("第一项", style="List Bullet")
    d.add_paragraph("第二项", style="List Bullet")
    d.add_heading("FAQ", level=1)
    d.add_paragraph("问题与解答。")
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def test_docx_headings_tables_in_order():
    doc = parse("guide.docx", _docx_bytes())
    assert doc.text == (
        "部署指南\n\n简介段落。\n\n安装 Install\n\n先下载安装包。\n\nLinux\n\n"
        "| 系统 | 命令 |\n|---|---|\n| Debian | apt install lotusdb |\n\n表格之后的段落。\n\n- 第一项\n- 第二项\n\n"
        "FAQ\n\n问题与解答。"
    )
    assert heading_paths(doc) == [["部署指南"], ["部署指南", "安装 Install"], ["部署指南", "安装 Install", "Linux"],
                                  ["部署指南", "FAQ"]]
    assert section_text(doc, ["部署指南", "安装 Install", "Linux"]).rstrip().endswith("- 第一项\n- 第二项")
    assert doc.title == "部署指南"
    assert doc.metadata["tables"] == 1


def test_docx_example_and_corrupt():
    doc = parse("m.docx", (EXAMPLES / "lotusdb_ops_manual.docx").read_bytes())
    assert ["LotusDB 运维手册 Operations Manual", "备份与恢复 Backup and Restore", "恢复 Restore"] in heading_paths(doc)
    assert "| write_p99_ms | 写入延迟 p99 / write latency p99 | > 5 |" in doc.text
    with pytest.raises(OperatorError) as e:
        parse("bad.docx", _docx_bytes()[:500])
    assert e.value.reason == "corrupt"


# ------------------------------------------------------------------ PPTX
def _pptx_bytes() -> bytes:
    prs = Presentation()
    s1 = prs.slides.add_slide(prs.slide_layouts[1])
    s1.shapes.title.text = "版本 2.3 新功能"
    s1.placeholders[1].text_frame.text = "快照隔离\n更快的压缩"
    s1.notes_slide.notes_text_frame.text = "强调隔离级别的变化。"
    s2 = prs.slides.add_slide(prs.slide_layouts[5])
    s2.shapes.title.text = "Compatibility"
    shape = s2.shapes.add_table(2, 2, 0, 0, 100, 100)
    for r, row in enumerate([("From", "Migration"), ("2.2", "No")]):
        for c, value in enumerate(row):
            shape.table.cell(r, c).text = value
    buf = io.BytesIO()
    prs.save(buf)
    return buf.getvalue()


def test_pptx_slides_titles_tables_notes():
    doc = parse("deck.pptx", _pptx_bytes())
    assert doc.text == (
        "版本 2.3 新功能\n\n快照隔离\n更快的压缩\n\nNotes: 强调隔离级别的变化。\n\n"
        "Compatibility\n\n| From | Migration |\n|---|---|\n| 2.2 | No |"
    )
    assert [p.page for p in doc.pages] == [1, 2]
    assert doc.text[doc.pages[1].start : doc.pages[1].end].startswith("Compatibility\n\n| From")
    assert heading_paths(doc) == [["版本 2.3 新功能"], ["Compatibility"]]
    assert doc.metadata == {"slide_count": 2, "slides_with_notes": 1}


def test_pptx_example():
    doc = parse("t.pptx", (EXAMPLES / "lotusdb_2.3_training.pptx").read_bytes())
    assert len(doc.pages) == 4
    assert "Notes: 1.x 用户必须分两步升级，这是客户最常问的问题。" in doc.text
    assert "| 2.0 → 2.3 | 是 Yes | 先运行 lotusctl migrate |" in doc.text
    assert doc.text.count("LotusDB 2.3 新版本培训") == 1  # the title is not repeated as body text


# ------------------------------------------------------------------ Markdown
MD = """# 用户手册

简介。

## 安装

```bash
# 这不是标题
pip install lotusdb
```

### Linux
步骤。

配置说明
--------

内容。

~~~
## 也不是标题
~~~
"""


def test_markdown_headings_skip_fenced_code_and_keep_text():
    doc = parse("m.md", MD.encode("utf-8"))
    assert doc.text == MD
    assert heading_paths(doc) == [["用户手册"], ["用户手册", "安装"], ["用户手册", "安装", "Linux"], ["用户手册", "配置说明"]]
    assert section_text(doc, ["用户手册", "安装"]).startswith("## 安装\n\n```bash\n# 这不是标题")
    assert section_text(doc, ["用户手册", "配置说明"]) == "配置说明\n--------\n\n内容。\n\n~~~\n## 也不是标题\n~~~\n"
    assert doc.title == "用户手册"


def test_markdown_example_setext_and_table():
    doc = parse("faq.md", (EXAMPLES / "lotusdb_faq_zh.md").read_bytes())
    paths = heading_paths(doc)
    assert ["莲花数据库（LotusDB）常见问题", "Compaction 调优"] in paths
    assert not any("注意" in p[-1] for p in paths)  # the "# ..." comment inside ```bash
    assert "| batch | 每 10 ms 刷盘一次 | 约 15 万次/秒 |" in doc.text


# ------------------------------------------------------------------ HTML
HTML = """<html><head><meta charset="gbk"><title>接口说明</title><script>var x = 1;</script></head>
<body><nav>菜单 首页</nav><header>页眉</header>
<main><h1>API</h1><p>所有函数返回 <code>int</code>。</p>
<h2>错误码</h2><table><tr><th>名称</th><th>值</th></tr><tr><td>LOTUS_OK</td><td>0</td></tr></table>
<ul><li>第一条</li><li>第二条</li></ul>
<h3>细节</h3><p>更多内容。</p></main>
<aside>广告</aside><footer>版权所有</footer></body></html>"""


def test_html_main_text_sections_tables_and_declared_gbk():
    doc = parse("api.html", HTML.encode("gbk"))
    assert doc.title == "接口说明"
    assert doc.metadata["encoding"] in ("gbk", "gb18030")
    assert doc.text == (
        "API\n\n所有函数返回 int。\n\n错误码\n\n| 名称 | 值 |\n|---|---|\n| LOTUS_OK | 0 |\n\n"
        "- 第一条\n\n- 第二条\n\n细节\n\n更多内容。"
    )
    assert heading_paths(doc) == [["API"], ["API", "错误码"], ["API", "错误码", "细节"]]
    for dropped in ("菜单", "页眉", "广告", "版权", "var x"):
        assert dropped not in doc.text


def test_html_example():
    doc = parse("a.html", (EXAMPLES / "lotusdb_api_overview.html").read_bytes())
    assert doc.title == "LotusDB C API Overview"
    assert ["LotusDB C API Overview", "Reads and writes", "Transactions"] in heading_paths(doc)
    assert "| LOTUS_EBUSY | -16 | Database locked by another process |" in doc.text
    assert "lotus_options opts = LOTUS_OPTIONS_INIT;\nopts.create_if_missing = 1;" in doc.text
    assert "Lotus Data Systems Ltd." not in doc.text  # footer dropped


# ------------------------------------------------------------------ text decoding
@pytest.mark.parametrize(
    "text,encoding,expected",
    [
        (ZH, "gbk", ("gbk", "gb18030")),
        (ZH + "𠀾𠁀", "gb18030", ("gb18030",)),
        (ZH_TRAD, "big5", ("big5", "big5hkscs", "cp950")),
        (ZH, "utf-16", ("utf-16",)),  # with BOM
        (ZH + "\n第二行 LotusDB 2.3\n", "utf-16-le", ("utf-16-le", "utf_16_le")),
        (ZH + "\n第二行 LotusDB 2.3\n", "utf-16-be", ("utf-16-be", "utf_16_be")),
        (ZH, "utf-8-sig", ("utf-8-sig",)),
        ("数据库启动失败，请检查配置文件。", "gbk", ("gbk", "gb18030")),
    ],
)
def test_txt_decodes_chinese_encodings(text, encoding, expected):
    doc = parse("note.txt", text.encode(encoding))
    assert doc.text == text
    assert doc.metadata["encoding"] in expected


def test_txt_example_gbk():
    doc = parse("h.txt", (EXAMPLES / "oncall_handbook_gbk.txt").read_bytes())
    assert doc.title == "莲花数据库值班手册（GBK 编码）"
    assert "切勿手动删除 LOCK 文件" in doc.text
    assert doc.metadata["encoding"] in ("gbk", "gb18030")


def test_decode_rejects_binary_and_undecodable():
    with pytest.raises(OperatorError) as e:
        decode_text(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    assert e.value.reason == "binary_content"
    with pytest.raises(OperatorError) as e:
        decode_text(b"\xef\xbb\xbf" + b"\xc3\x28\xa0\xa1" * 20)  # a UTF-8 BOM, then invalid UTF-8
    assert e.value.reason == "undecodable"


# ------------------------------------------------------------------ records
API = [
    {"函数": "lotus_get", "语法": "int lotus_get(lotus_db *db, const void *key);", "返回值": "成功时返回 0。",
     "备注": "缓冲区由调用方释放。"},
    {"语法": "int lotus_close(lotus_db *db);", "返回值": "总是返回 0。", "备注": ""},
]


def test_json_records_one_doc_per_record_with_field_sections():
    parser = parser_for("api.json")
    docs = parser.parse_records(json.dumps(API, ensure_ascii=False).encode(), "api.json")
    assert len(docs) == 2
    first, second = docs
    assert first.title == "lotus_get"
    assert first.text == ("# lotus_get\n\n## 语法\n\nint lotus_get(lotus_db *db, const void *key);\n\n"
                          "## 返回值\n\n成功时返回 0。\n\n## 备注\n\n缓冲区由调用方释放。")
    assert heading_paths(first) == [["lotus_get"], ["lotus_get", "语法"], ["lotus_get", "返回值"], ["lotus_get", "备注"]]
    assert section_text(first, ["lotus_get", "返回值"]).strip() == "## 返回值\n\n成功时返回 0。"
    assert list(first.metadata["fields"]) == ["函数", "语法", "返回值", "备注"]
    assert first.metadata["record_index"] == 0
    assert second.title == "api.json#1"
    assert heading_paths(second) == [["api.json#1"], ["api.json#1", "语法"], ["api.json#1", "返回值"]]
    single = parser.parse_records(json.dumps(API[0], ensure_ascii=False).encode(), "one.json")
    assert [d.title for d in single] == ["lotus_get"]


def test_jsonl_csv_xlsx_records(tmp_path):
    jsonl = "\n".join(json.dumps(r, ensure_ascii=False) for r in API).encode()
    assert [d.title for d in parser_for("a.jsonl").parse_records(jsonl, "a.jsonl")] == ["lotus_get", "a.jsonl#1"]
    docs = parser_for("a.jsonl").parse_records(b'{"a": 1}\n{broken\n', "a.jsonl")
    assert docs[1].metadata["reject"]["reason"] == "corrupt", "a bad line is that record's reject"
    with pytest.raises(OperatorError) as e:  # no valid line at all: the file is corrupt
        parser_for("a.jsonl").parse_records(b'{broken\n', "a.jsonl")
    assert e.value.reason == "corrupt"

    csv_bytes = "名称,值,说明\nLOTUS_OK,0,成功\nLOTUS_EBUSY,-16,\"被锁定, 稍后重试\"\n".encode("gbk")
    docs = parser_for("codes.csv").parse_records(csv_bytes, "codes.csv")
    assert [d.title for d in docs] == ["LOTUS_OK", "LOTUS_EBUSY"]
    assert docs[1].metadata["fields"] == {"名称": "LOTUS_EBUSY", "值": "-16", "说明": "被锁定, 稍后重试"}
    assert docs[1].text == "# LOTUS_EBUSY\n\n## 值\n\n-16\n\n## 说明\n\n被锁定, 稍后重试"

    wb = Workbook()
    ws = wb.active
    ws.title = "errors"
    ws.append(["name", "value"])
    ws.append(["LOTUS_ENOSPC", -28])
    ws.append([None, None])
    ws.append(["LOTUS_EINVAL", -22])
    buf = io.BytesIO()
    wb.save(buf)
    docs = parser_for("e.xlsx").parse_records(buf.getvalue(), "e.xlsx")
    assert [(d.title, d.metadata["fields"]["value"], d.metadata["sheet"]) for d in docs] == [
        ("LOTUS_ENOSPC", -28, "errors"), ("LOTUS_EINVAL", -22, "errors")]


def test_records_examples():
    docs = parser_for("x.json").parse_records((EXAMPLES / "lotusdb_c_api.json").read_bytes(), "x.json")
    assert [d.title for d in docs] == ["lotus_open", "lotus_put", "lotus_get", "lotus_txn_commit"]
    assert ["lotus_put", "返回值"] in heading_paths(docs[1])
    docs = parser_for("c.csv").parse_records((EXAMPLES / "lotusdb_error_codes.csv").read_bytes(), "c.csv")
    assert len(docs) == 7
    assert docs[4].metadata["fields"]["meaning"] == "Invalid argument, e.g. key longer than 4 KB"


# ------------------------------------------------------------------ code and logs
PY = '''"""Module doc."""
import os


@decorator
def first(a):
    return a


class Store:
    def method(self):
        pass


async def later():
    pass
'''


def test_code_python_and_c_sections():
    doc = parse("tool.py", PY.encode())
    assert doc.metadata["language"] == "python"
    assert heading_paths(doc) == [["first"], ["Store"], ["later"]]
    assert section_text(doc, ["first"]) == "@decorator\ndef first(a):\n    return a\n\n\n"
    assert doc.text == PY
    doc = parse("kv.c", (EXAMPLES / "lotus_kv_example.c").read_bytes())
    assert doc.metadata["language"] == "c"
    assert heading_paths(doc) == [["status_name"], ["kv_set"], ["kv_show"], ["main"]]
    assert section_text(doc, ["kv_set"]).startswith("/* Store one key; returns 0 on success. */\nint kv_set(")


def test_log_levels_and_time_span():
    doc = parse("server.log", (EXAMPLES / "lotusdb_server.log").read_bytes())
    assert doc.metadata["lines"] == 19
    assert doc.metadata["levels"]["ERROR"] == 3
    assert doc.metadata["levels"]["WARN"] == 3
    assert doc.metadata["levels"]["INFO"] == 13
    assert doc.metadata["time_start"] == "2024-09-20T08:00:01"
    assert doc.metadata["time_end"] == "2024-09-20T11:06:45"


def test_page_offsets_cover_text():
    doc = parse("g.pdf", (EXAMPLES / "lotusdb_install_guide.pdf").read_bytes())
    assert all(isinstance(p, Page) and 0 <= p.start <= p.end <= len(doc.text) for p in doc.pages)
    assert doc.pages[-1].end == len(doc.text)


@pytest.mark.parametrize("text,encoding", [("简短", "gbk"), ("故障处理", "gbk"), ("用户名,密码\n张三,123\n", "gbk"),
                                           ("人口", "gbk"), ("資料庫設定", "big5"), ("Hello world 中文", "gb18030")])
def test_short_chinese_text_decodes_right(text, encoding):
    """Detectors guess wrong on a few bytes (Korean, Big5 for GBK): short Chinese files must still read right."""
    from infuse.operators.parsers.textdecode import decode_text

    assert decode_text(text.encode(encoding))[0] == text


def test_csv_keeps_cells_past_the_header_and_big_cells():
    from infuse.operators.parsers.csvrec import CsvParser

    big = "x" * 200_000
    data = f'name,desc\nfoo,"multi\nline",OVERFLOW\nbar,{big}\n'.encode()
    docs = CsvParser().parse_records(data, "t.csv")
    assert docs[0].metadata["fields"]["column3"] == "OVERFLOW"
    assert docs[1].text == big and docs[1].metadata["text_field"] == "desc", "one long field: a text record"


def test_jsonl_line_with_a_raw_line_separator_and_field_order():
    import json as _json

    from infuse.operators.parsers.jsonrec import JsonlParser

    rec = {"zeta": "first field", "alpha": "second\u2028field", "mid": 3}
    docs = JsonlParser().parse_records((_json.dumps(rec, ensure_ascii=False) + "\n").encode(), "t.jsonl")
    assert list(docs[0].metadata["fields"]) == ["zeta", "alpha", "mid"]
    from infuse.operators.parsers.document import document_row

    row = document_row("d", "t.jsonl", "jsonl", docs[0])
    assert list(_json.loads(row["metadata"])["fields"]) == ["zeta", "alpha", "mid"], "field order survives storage"


def test_docx_merged_cells_once_and_nested_tables_kept():
    import io

    import docx as python_docx

    from infuse.operators.parsers.docx import DocxParser

    d = python_docx.Document()
    t = d.add_table(rows=2, cols=3)
    t.cell(0, 0).merge(t.cell(0, 2)).text = "merged value"
    t.cell(1, 0).text, t.cell(1, 1).text = "x", "y"
    inner = t.cell(1, 2).add_table(rows=1, cols=2)
    inner.cell(0, 0).text, inner.cell(0, 1).text = "in1", "in2"
    buf = io.BytesIO()
    d.save(buf)
    text = DocxParser().parse(buf.getvalue(), "t.docx").text
    assert text.count("merged value") == 1
    assert "| x | y | in1 in2 |" in text


def test_docx_content_control_paragraphs_are_kept():
    """Block-level `w:sdt` (a form's section) and inline `w:sdt` (a filled-in field) keep their text."""
    from docx.oxml import OxmlElement

    d = docx.Document()
    d.add_heading("Form", level=1)
    d.add_paragraph("Before the control.")
    heading = d.add_heading("Controlled section", level=2)
    inside = d.add_paragraph("仅在内容控件里的段落。")
    sdt, content = OxmlElement("w:sdt"), OxmlElement("w:sdtContent")
    sdt.append(OxmlElement("w:sdtPr"))
    sdt.append(content)
    heading._p.addprevious(sdt)
    content.append(heading._p)
    content.append(inside._p)
    para = d.add_paragraph("Owner: ")
    inline, inline_content = OxmlElement("w:sdt"), OxmlElement("w:sdtContent")
    inline.append(inline_content)
    inline_content.append(d.add_paragraph().add_run("the LotusDB team")._r)
    para._p.append(inline)
    buf = io.BytesIO()
    d.save(buf)
    doc = parse("form.docx", buf.getvalue())
    assert doc.text == ("Form\n\nBefore the control.\n\nControlled section\n\n仅在内容控件里的段落。\n\n"
                        "Owner: the LotusDB team")
    assert ["Form", "Controlled section"] in heading_paths(doc)


# ------------------------------------------------------------------ EPUB
def _epub_bytes(tmp_path) -> bytes:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("lotus-guide")
    book.set_title("LotusDB 指南")
    book.set_language("zh")
    intro = epub.EpubHtml(title="简介", file_name="intro.xhtml", lang="zh")
    intro.content = "<html><body><p>莲花数据库是一款嵌入式键值数据库。</p></body></html>"
    ops = epub.EpubHtml(title="Operations", file_name="ops.xhtml")
    ops.content = ("<html><body><h1>Operations</h1><p>Back up nightly.</p><h2>Restore</h2>"
                   "<p>Stop the server first.</p><pre class='language-bash'>lotus restore /backup</pre></body></html>")
    faq = epub.EpubHtml(title="FAQ", file_name="faq.xhtml")
    faq.content = "<html><body><h1>FAQ</h1><p>Why is the first open slow? The WAL is replayed.</p></body></html>"
    for ch in (faq, ops, intro):  # added out of order: the spine decides the reading order
        book.add_item(ch)
    book.toc = [epub.Link("intro.xhtml", "简介", "intro"), epub.Link("ops.xhtml", "Operations", "ops"),
                epub.Link("faq.xhtml", "FAQ", "faq")]
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", intro, ops, faq]
    path = tmp_path / "guide.epub"
    epub.write_epub(str(path), book)
    return path.read_bytes()


def test_epub_chapters_in_spine_order_with_headings(tmp_path):
    doc = parse("guide.epub", _epub_bytes(tmp_path))
    assert doc.title == "LotusDB 指南"
    assert heading_paths(doc) == [["简介"], ["Operations"], ["Operations", "Restore"], ["FAQ"]]
    assert doc.text.index("莲花数据库") < doc.text.index("Back up nightly") < doc.text.index("WAL is replayed")
    assert section_text(doc, ["Operations", "Restore"]).rstrip().endswith("```bash\nlotus restore /backup\n```")
    assert doc.metadata["chapters"] == 3 and doc.metadata["spine"] == ["intro.xhtml", "ops.xhtml", "faq.xhtml"]


def test_epub_corrupt_and_drm_are_rejects_with_a_reason(tmp_path):
    data = _epub_bytes(tmp_path)
    with pytest.raises(OperatorError) as e:
        parse("broken.epub", data[: len(data) // 3])
    assert e.value.reason == "corrupt"
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(buf, "w") as dst:
        for item in src.infolist():
            dst.writestr(item, src.read(item))
        dst.writestr("META-INF/encryption.xml", (
            '<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
            'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>'
            '<enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>'
            '<enc:CipherData><enc:CipherReference URI="EPUB/ops.xhtml"/></enc:CipherData>'
            '</enc:EncryptedData></encryption>'))
    with pytest.raises(OperatorError) as e:
        parse("locked.epub", buf.getvalue())
    assert e.value.reason == "encrypted" and "EPUB/ops.xhtml" in e.value.message
