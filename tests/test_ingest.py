"""scan + parse_file: every reject reason, ids, and the examples/ corpus fully accounted for; parse_files (the
step's work without a flow): the per-file cache, the same bytes under two names, every file's fate."""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import docx

from infuse.operators.parsers.ingest import REASONS, FileEntry, parse_file, scan

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
LIMIT = 10 * 1024 * 1024


def _entry(folder: Path, name: str, data: bytes) -> FileEntry:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return FileEntry(name, path, len(data), hashlib.sha256(data).hexdigest())


def _parse(tmp_path: Path, name: str, data: bytes):
    return parse_file(_entry(tmp_path, name, data), data)


def _reasons(rejects) -> list[tuple[str, str]]:
    return [(r.id, r.reason) for r in rejects]


def test_scan_sorted_hashed_skips_hidden(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.md").write_text("# Z\n\nzed\n", encoding="utf-8")
    (tmp_path / "a.txt").write_text("hello", encoding="utf-8")
    (tmp_path / ".hidden.txt").write_text("secret", encoding="utf-8")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config.txt").write_text("x", encoding="utf-8")
    entries, rejects = scan(tmp_path, LIMIT)
    assert rejects == []
    assert [e.path_rel for e in entries] == ["a.txt", "b/z.md"]
    assert entries[0].sha256 == hashlib.sha256(b"hello").hexdigest()
    assert entries[0].size == 5 and entries[0].abs_path == tmp_path / "a.txt"


def test_scan_rejects_empty_unsupported_too_large(tmp_path):
    (tmp_path / "zero.txt").write_bytes(b"")
    (tmp_path / "blank.md").write_bytes(b"  \n\t\r\n  ")
    (tmp_path / "slides.key").write_bytes(b"keynote")
    (tmp_path / "big.log").write_bytes(b"x" * 2048)
    (tmp_path / "ok.txt").write_bytes(b"fine")
    entries, rejects = scan(tmp_path, 1024)
    assert [e.path_rel for e in entries] == ["ok.txt"]
    assert sorted(_reasons(rejects)) == [
        ("big.log", "too_large"), ("blank.md", "empty"), ("slides.key", "unsupported_extension"), ("zero.txt", "empty")]
    big = next(r for r in rejects if r.reason == "too_large")
    assert big.detail["size"] == 2048 and big.detail["limit"] == 1024 and len(big.detail["fingerprint"]) == 64


def test_parse_file_rejects_unsupported_extension(tmp_path):
    rows, rejects = _parse(tmp_path, "deck.odp", b"anything")
    assert rows == [] and _reasons(rejects) == [("deck.odp", "unsupported_extension")]


def test_encrypted_pdf_rejected(tmp_path):
    data = (EXAMPLES / "rejects" / "encrypted_guide.pdf").read_bytes()
    rows, rejects = _parse(tmp_path, "locked.pdf", data)
    assert rows == [] and _reasons(rejects) == [("locked.pdf", "encrypted")]


def test_corrupt_files_rejected_never_raise(tmp_path):
    truncated = (EXAMPLES / "rejects" / "truncated_guide.pdf").read_bytes()
    assert _reasons(_parse(tmp_path, "t.pdf", truncated)[1]) == [("t.pdf", "corrupt")]
    assert _reasons(_parse(tmp_path, "z.docx", b"PK\x03\x04 not really a zip")[1]) == [("z.docx", "corrupt")]
    assert _reasons(_parse(tmp_path, "z.xlsx", b"\x00\x01 not a workbook")[1]) == [("z.xlsx", "corrupt")]
    assert _reasons(_parse(tmp_path, "bad.json", b'{"a": [1, 2')[1]) == [("bad.json", "corrupt")]


def test_unexpected_library_error_becomes_corrupt(tmp_path):
    """A real DOCX whose document.xml is not XML: python-docx raises lxml's XMLSyntaxError."""
    buf = io.BytesIO()
    docx.Document().save(buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = b"<w:document><unclosed" if info.filename == "word/document.xml" else src.read(info)
            dst.writestr(info.filename, data)
    rows, rejects = _parse(tmp_path, "broken.docx", out.getvalue())
    assert rows == [] and _reasons(rejects) == [("broken.docx", "corrupt")]
    assert rejects[0].detail["exception"] == "XMLSyntaxError"


def test_binary_content_under_text_extension(tmp_path):
    rows, rejects = _parse(tmp_path, "dump.txt", b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)))
    assert rows == [] and _reasons(rejects) == [("dump.txt", "binary_content")]
    assert _reasons(_parse(tmp_path, "x.csv", b"a,b\n\x00\x00\x01,2\n")[1]) == [("x.csv", "binary_content")]


def test_undecodable_text(tmp_path):
    data = bytes(range(128, 256)) * 3  # high bytes only: no encoding gives clean text
    rows, rejects = _parse(tmp_path, "mystery.txt", data)
    assert rows == [] and _reasons(rejects) == [("mystery.txt", "undecodable")]


def test_empty_after_parse(tmp_path):
    html = b"<html><head><script>var a = 1;</script></head><body><nav>menu</nav></body></html>"
    assert _reasons(_parse(tmp_path, "nav.html", html)[1]) == [("nav.html", "empty")]
    assert _reasons(_parse(tmp_path, "none.json", b"[]")[1]) == [("none.json", "empty")]
    rows, rejects = _parse(tmp_path, "part.json", json.dumps([{"name": "", "v": None}, {"name": "ok"}]).encode())
    assert _reasons(rejects) == [("part.json#0", "empty")]
    assert [r["title"] for r in rows] == ["ok"]


def test_every_reason_code_is_produced_by_some_input(tmp_path):
    """Each reason in REASONS comes out of a real input: none is listed without a path that makes it."""
    import fpdf
    from pypdf import PdfWriter

    from infuse.operators.parsers.ingest import duplicate_file

    pdf = fpdf.FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.cell(0, 10, "secret")
    plain = bytes(pdf.output())
    w = PdfWriter()
    from pypdf import PdfReader
    import io

    for page in PdfReader(io.BytesIO(plain)).pages:
        w.add_page(page)
    w.encrypt("pw")
    buf = io.BytesIO()
    w.write(buf)
    cases = {"encrypted": ("a.pdf", buf.getvalue()), "corrupt": ("b.pdf", plain[: len(plain) // 2]),
             "binary_content": ("c.txt", b"ab\x00\x01\x02" * 50), "undecodable": ("d.txt", bytes(range(128, 256)) * 8)}
    seen = set()
    for reason, (name, data) in cases.items():
        _, rejects = _parse(tmp_path, name, data)
        seen |= {r.reason for r in rejects}
    folder = tmp_path / "scan"
    folder.mkdir()
    (folder / "empty.txt").write_bytes(b"")
    (folder / "x.rtf").write_bytes(b"{\\rtf1}")
    (folder / "big.txt").write_bytes(b"x" * 2048)
    _, scan_rejects = scan(folder, 1024)
    seen |= {r.reason for r in scan_rejects}
    seen.add(duplicate_file("b.md", "a.md").reason)
    assert seen == set(REASONS)


def test_doc_ids_and_rows(tmp_path):
    data = "# 标题\n\n正文。\n".encode("utf-8")
    rows, rejects = _parse(tmp_path, "docs/a.md", data)
    assert rejects == []
    (row,) = rows
    assert row["doc_id"] == hashlib.sha256(data).hexdigest()
    assert row["path"] == "docs/a.md" and row["format"] == "markdown" and row["title"] == "标题"
    assert row["sections"] == [{"heading_path": ["标题"], "level": 1, "start": 0, "end": len(data.decode())}]
    assert json.loads(row["metadata"]) == {"encoding": "utf-8"}
    records = json.dumps([{"name": "a", "x": 1}, {"name": "b", "x": 2}]).encode()
    rows, _ = _parse(tmp_path, "r.json", records)
    sha = hashlib.sha256(records).hexdigest()
    assert [r["doc_id"] for r in rows] == [f"{sha}:0", f"{sha}:1"]
    assert json.loads(rows[1]["metadata"])["fields"] == {"name": "b", "x": 2}


def test_examples_every_file_is_a_document_or_a_reject():
    all_files = sorted(p.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.rglob("*")
                       if p.is_file() and not any(part.startswith(".") for part in p.relative_to(EXAMPLES).parts))
    entries, rejects = scan(EXAMPLES, LIMIT)
    documents: dict[str, int] = {}
    for entry in entries:
        rows, file_rejects = parse_file(entry, entry.abs_path.read_bytes())
        rejects += file_rejects
        for row in rows:
            documents[row["path"]] = documents.get(row["path"], 0) + 1
            assert row["text"].strip()
    rejected = {r.id: r.reason for r in rejects}
    assert sorted(set(documents) | set(rejected)) == all_files
    assert not set(documents) & set(rejected)
    assert rejected == {
        "rejects/empty_notes.txt": "empty",
        "rejects/encrypted_guide.pdf": "encrypted",
        "rejects/firmware_dump.txt": "binary_content",
        "rejects/release_notes.rtf": "unsupported_extension",
        "rejects/truncated_guide.pdf": "corrupt",
    }
    assert documents["lotusdb_c_api.json"] == 4 and documents["lotusdb_error_codes.csv"] == 7
    formats = {"pdf", "docx", "pptx", "md", "html", "txt", "json", "csv", "c", "log"}
    assert formats <= {p.rsplit(".", 1)[1] for p in documents}


def test_one_bad_jsonl_line_rejects_that_record_only(tmp_path):
    from infuse.operators.parsers.ingest import FileEntry, parse_file

    data = b'{"name": "a", "doc": "first"}\n{not json}\n{"name": "c", "doc": "third"}\n'
    path = tmp_path / "r.jsonl"
    path.write_bytes(data)
    rows, rejects = parse_file(FileEntry("r.jsonl", path, len(data), "x"), data)
    assert [r["title"] for r in rows] == ["a", "c"]
    assert [(r.id, r.reason) for r in rejects] == [("r.jsonl#1", "corrupt")]
    assert "line 2" in rejects[0].message


def test_json_wrapper_object_is_unwrapped(tmp_path):
    import json

    from infuse.operators.parsers.ingest import FileEntry, parse_file

    data = json.dumps({"data": [{"name": "a", "doc": "x"}, {"name": "b", "doc": "y"}]}).encode()
    path = tmp_path / "w.json"
    path.write_bytes(data)
    rows, rejects = parse_file(FileEntry("w.json", path, len(data), "x"), data)
    assert [r["title"] for r in rows] == ["a", "b"] and not rejects


def _jsonl(tmp_path, name: str, data: bytes):
    from infuse.operators.parsers.ingest import FileEntry, parse_file

    path = tmp_path / name
    path.write_bytes(data)
    return parse_file(FileEntry(name, path, len(data), "x"), data)


WEB = ["Don\ufffdt think you need all the bells and whistles? Our air cleaners improve the air in your home "
       "without breaking the bank, and they last for years with little care.",
       "The museum opens at nine. Tickets are sold at the door and online; children under six go free.",
       "Caf\ufffd\ufffd owners say the new street layout brought more customers on weekdays than before."]


def test_utf8_jsonl_with_replacement_characters_keeps_every_record(tmp_path):
    """U+FFFD already in scraped text is content: the file is valid UTF-8, so it is text (issue: c4 vanished)."""
    data = "".join(json.dumps({"text": t, "url": f"https://x.example/{i}"}, ensure_ascii=False) + "\n"
                   for i, t in enumerate(WEB)).encode()
    rows, rejects = _jsonl(tmp_path, "web.jsonl", data)
    assert rejects == [] and [r["text"] for r in rows] == WEB
    assert [json.loads(r["metadata"]).get("replacement_chars") for r in rows] == [1, None, 2]
    txt_rows, txt_rejects = _jsonl(tmp_path, "web.txt", "\n".join(WEB).encode())
    assert txt_rejects == [] and json.loads(txt_rows[0]["metadata"])["replacement_chars"] == 3


def test_jsonl_line_of_invalid_bytes_rejects_that_record_and_keeps_the_others(tmp_path):
    lines = [json.dumps({"text": t}, ensure_ascii=False).encode() for t in WEB]
    lines[1] = b'{"text": "caf\xe9 \xff\xfe broken bytes here"}'
    rows, rejects = _jsonl(tmp_path, "mixed.jsonl", b"\n".join(lines) + b"\n")
    assert [r["text"] for r in rows] == [WEB[0], WEB[2]]
    assert [(r.id, r.reason) for r in rejects] == [("mixed.jsonl#1", "undecodable")]
    assert "line 2" in rejects[0].message and "UTF-8" in rejects[0].message
    csv_rows, csv_rejects = _jsonl(tmp_path, "t.csv", b"name,note\na,fine\nb,caf\xe9 \xff\nc,also fine\n")
    assert [r["title"] for r in csv_rows] == ["a", "c"] and [(r.id, r.reason) for r in csv_rejects] == [
        ("t.csv#1", "undecodable")]


def test_gbk_csv_is_still_read_as_gbk(tmp_path):
    """A GBK file is not 'UTF-8 with bad records': its non-UTF-8 lines read as common Chinese in GBK."""
    data = "name,note\nLOTUS_OK,ok\nLOTUS_EBUSY,数据目录被其他进程锁定\n".encode("gbk")
    rows, rejects = _jsonl(tmp_path, "codes.csv", data)
    assert not rejects and "数据目录被其他进程锁定" in rows[1]["text"]


def test_text_corpus_jsonl_gives_one_document_and_text_chunks_per_line(tmp_path):
    """{chunk_id, text} web text: the text is the document; no id, no heading-only chunks (issue: 3 per record)."""
    from infuse.operators.chunk.chunker import ChunkConfig, chunk_document

    long = " ".join(WEB) * 8
    data = "".join(json.dumps({"chunk_id": f"{i:08d}", "text": t}) + "\n" for i, t in enumerate([WEB[1], long]))
    rows, rejects = _jsonl(tmp_path, "corpus.jsonl", data.encode())
    assert not rejects and [r["text"] for r in rows] == [WEB[1], long]
    assert [r["format"] for r in rows] == ["txt", "txt"] and rows[0]["sections"] == []
    meta = json.loads(rows[0]["metadata"])
    assert meta["text_field"] == "text" and meta["record_fields"] == {"chunk_id": "00000000"}
    chunks = [chunk_document(r, ChunkConfig()) for r in rows]
    assert [len(c) for c in chunks][0] == 1 and len(chunks[1]) > 1
    for c in chunks[0] + chunks[1]:
        assert c["kind"] == "text" and "00000000" not in c["text"] and not c["text"].startswith("#")


def test_structured_records_keep_their_field_sections_and_never_give_heading_only_chunks():
    from infuse.operators.chunk.chunker import ChunkConfig, chunk_document, headings_only

    data = (EXAMPLES / "lotusdb_c_api.json").read_bytes()
    rows, rejects = parse_file(FileEntry("api.json", EXAMPLES / "lotusdb_c_api.json", len(data), "x"), data)
    assert not rejects and rows[0]["format"] == "json"
    assert [s["heading_path"] for s in rows[0]["sections"]][:3] == [
        ["lotus_open"], ["lotus_open", "语法"], ["lotus_open", "返回值"]]
    chunks = [c for r in rows for c in chunk_document(r, ChunkConfig())]
    assert chunks and all(not headings_only(c["text"], c["heading_path"]) for c in chunks)
    assert not any(c["text"].strip() == "# lotus_open" for c in chunks)
    assert any(c["text"].startswith("## 语法\n\nint lotus_open(") for c in chunks)


# ---- parse_files: the step's work, without a flow ------------------------------------------------------------

class DictCache:
    """A FileCache in memory; like the store's, it hands out copies (parse_files sets each row's path)."""

    def __init__(self) -> None:
        self.kept: dict[str, tuple[list[dict], list]] = {}

    def get(self, name: str):
        found = self.kept.get(name)
        return None if found is None else ([dict(r) for r in found[0]], list(found[1]))

    def put(self, name: str, rows: list[dict], rejects: list) -> None:
        self.kept[name] = ([dict(r) for r in rows], list(rejects))


def _parse_folder(folder: Path, cache: DictCache):
    from infuse.operators.parsers.run import parse_files

    written: list[dict] = []
    ticks: list[int] = []
    entries, scan_rejects = scan(folder, LIMIT, hash_files=False)
    res = parse_files(entries, scan_rejects, cache, written.extend, lambda: ticks.append(1))
    assert len(ticks) == len(entries)
    return res, [(r["path"], r["title"]) for r in written]


def test_parse_files_caches_by_bytes_and_path_and_keeps_the_first_name_of_the_same_bytes(tmp_path):
    (tmp_path / "a.md").write_text("# Alpha\n\nfirst\n", encoding="utf-8")
    (tmp_path / "b.md").write_text("# Alpha\n\nfirst\n", encoding="utf-8")
    (tmp_path / "c.txt").write_text("Charlie\nthird\n", encoding="utf-8")
    (tmp_path / "e.txt").write_text("", encoding="utf-8")
    cache = DictCache()
    res, rows = _parse_folder(tmp_path, cache)
    assert rows == [("a.md", "Alpha"), ("c.txt", "Charlie")]
    assert (res.parsed, res.reused, res.kept_files, res.documents, res.formats) == (3, 0, 2, 2, {"markdown": 1, "txt": 1})
    assert _reasons(res.rejects) == [("e.txt", "empty"), ("b.md", "duplicate_file")]
    assert [(f["path"], f["fate"]) for f in res.input_files] == [
        ("a.md", "kept"), ("b.md", "duplicate_file"), ("c.txt", "kept"), ("e.txt", "empty")]
    again, rows_again = _parse_folder(tmp_path, cache)
    assert (again.parsed, again.reused, rows_again) == (0, 3, rows), "every parse from the cache"
    (tmp_path / "a.md").rename(tmp_path / "z.md")  # the same bytes under a new name: b.md is now the first
    moved, moved_rows = _parse_folder(tmp_path, cache)
    assert (moved.parsed, moved.reused) == (1, 2), "the cache name holds the path: z.md is parsed once"
    assert moved_rows == [("b.md", "Alpha"), ("c.txt", "Charlie")]
    assert ("z.md", "duplicate_file") in _reasons(moved.rejects)


def test_a_folder_parse_rejects_whole_is_said_file_by_file(tmp_path):
    from infuse.operators.parsers.run import folder_fates

    (tmp_path / "e.txt").write_text("", encoding="utf-8")
    (tmp_path / "n.rtf").write_text("x", encoding="utf-8")
    (tmp_path / "big.md").write_text("y" * 2_200_000, encoding="utf-8")
    assert folder_fates(tmp_path, 2, lambda p: p.name) == [
        ("too_large", "big.md is 2.1 MB, over max_file_mb 2"), ("empty", "e.txt is empty (0 bytes)"),
        ("unsupported_extension", "n.rtf: no parser for '.rtf'")]
    (tmp_path / "ok.md").write_text("# fine", encoding="utf-8")
    assert folder_fates(tmp_path, 2, lambda p: p.name) == [], "a file parse will read: the run judges it"
    (tmp_path / "ok.md").write_bytes(b"\x00\x01" * 100)
    (tmp_path / "big.md").unlink()
    res, rows = _parse_folder(tmp_path, DictCache())
    assert rows == [] and res.kept_files == 0
    assert res.fates(tmp_path, 2, lambda p: p.name) == [
        ("empty", "e.txt: file is empty (0 bytes)"), ("unsupported_extension", "n.rtf: no parser for '.rtf'"),
        ("binary_content", "ok.md: NUL or control bytes: binary data under a text extension")]
