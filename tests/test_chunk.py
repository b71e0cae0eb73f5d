"""Chunking: sizes, sentence/section/table/code boundaries, exact offsets, coverage and overlap."""
from __future__ import annotations

import hashlib
import re

import pytest

from infuse.operators.chunk.chunker import ChunkConfig, chunk_document, headings_only
from infuse.operators.parsers.document import Page, ParsedDoc, Section, document_row

CFG = ChunkConfig(target_chars=300, max_chars=600, min_chars=40, overlap_chars=40)


def make_doc(text: str, fmt: str = "md", sections=(), pages=()) -> dict:
    parsed = ParsedDoc(title="t", text=text, sections=list(sections), pages=list(pages))
    return document_row("d" * 64, f"docs/x.{fmt}", fmt, parsed)


def markdown_sections(text: str) -> list[Section]:
    """Sections as a Markdown parser would give them: heading line to the next heading of the same or higher level."""
    heads = [(m.start(), len(m.group(1)), m.group(2).strip()) for m in re.finditer(r"(?m)^(#{1,6}) (.*)$", text)]
    out, stack = [], []
    for i, (start, level, title) in enumerate(heads):
        stack = [s for s in stack if s[0] < level] + [(level, title)]
        end = next((h[0] for h in heads[i + 1 :] if h[1] <= level), len(text))
        out.append(Section([t for _, t in stack], level, start, end))
    return out


def check_invariants(doc: dict, rows: list[dict], cfg: ChunkConfig = CFG) -> None:
    """What every chunking must satisfy: exact slices, ids, order, size, coverage, no stray whitespace."""
    text = doc["text"]
    covered = bytearray(len(text))
    for i, r in enumerate(rows):
        assert r["chunk_index"] == i
        assert r["text"] == text[r["start"] : r["end"]]
        assert r["text"] == r["text"].strip() and r["text"]
        assert r["chunk_id"] == hashlib.sha256(f"{doc['doc_id']}:{r['start']}:{r['end']}".encode()).hexdigest()[:32]
        assert r["doc_id"] == doc["doc_id"] and r["path"] == doc["path"] and r["format"] == doc["format"]
        assert len(r["text"]) <= cfg.max_chars
        covered[r["start"] : r["end"]] = b"\1" * (r["end"] - r["start"])
        assert not headings_only(r["text"], r["heading_path"]), "a chunk is never only headings"
    assert all(a["start"] < b["start"] for a, b in zip(rows, rows[1:]))
    missed = [i for i, ch in enumerate(text) if not ch.isspace() and not covered[i]]

    def line_at(i: int) -> str:
        return text[text.rfind("\n", 0, i) + 1 : (text.find("\n", i) + 1 or len(text) + 1) - 1]

    # what no chunk covers is heading lines only (heading-only pieces are dropped; the heading lives on in
    # the heading_path of the chunks below it)
    assert [i for i in missed if not re.fullmatch(r"#{1,6} .*", line_at(i).strip())] == []


EN_SENTENCES = [
    "The pump station was rebuilt in 2019 after the flood damaged its intake.",
    "Operators now check the valves e.g. the inlet valve and the bypass every morning.",
    "Pressure is kept at 3.14 bar, which matches the v1.2 specification for the plant.",
    "Dr. Lee wrote the original procedure and signed it on behalf of the board.",
    "Why does the alarm trigger twice?",
    "Because the sensor reports both the rising and the falling edge of the signal!",
    "A fix was deployed, and the alarm now fires once per event as expected.",
    "Maintenance logs are kept for seven years in the archive room on the second floor.",
]


def english_text(paragraphs: int = 6) -> str:
    paras = []
    for p in range(paragraphs):
        k = 3 + p % 3
        paras.append(" ".join(EN_SENTENCES[(p + i) % len(EN_SENTENCES)] for i in range(k)))
    return "\n\n".join(paras)


ZH_SENTENCES = [
    "泵站在二〇一九年洪水之后进行了重建，进水口也一并更换。",
    "操作员每天早上检查阀门，包括进水阀和旁通阀！",
    "为什么报警会响两次？",
    "因为传感器同时报告了信号的上升沿和下降沿；",
    "他说：「修复已经上线，现在每个事件只报警一次。」",
    "维护记录保存七年，存放在二楼的档案室里。",
    "（详见附录二的操作规程。）",
]


def chinese_text(repeat: int = 6) -> str:
    return "".join(ZH_SENTENCES[i % len(ZH_SENTENCES)] for i in range(repeat * len(ZH_SENTENCES)))


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(target_chars=0), r"target_chars\n  Input should be greater than 0"),
        (dict(max_chars=-5), r"max_chars\n  Input should be greater than 0"),
        (dict(min_chars=0), r"min_chars\n  Input should be greater than 0"),
        (dict(overlap_chars=-1), r"overlap_chars\n  Input should be greater than or equal to 0"),
        (dict(target_chars=800, max_chars=500), r"max_chars \(500\) must be >= target_chars \(800\)"),
        (dict(overlap_chars=500), r"overlap_chars \(500\) must be < target_chars \(500\)"),
        (dict(min_chars=600, max_chars=1000), r"min_chars \(600\) must be < target_chars \(500\)"),
        (dict(target_chars="500"), r"target_chars\n  Input should be a valid integer"),
    ],
)
def test_validate_rejects_bad_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ChunkConfig(**kwargs)


def test_recipe_validation_rejects_what_the_chunker_would():
    from infuse.flows.recipe import RecipeError, parse_recipe

    with pytest.raises(RecipeError, match=r"steps.chunk: Value error, max_chars \(1000\) must be >= target_chars"):
        parse_recipe({"input": ".", "steps": {"chunk": {"target_chars": 2000}}})


# ---------------------------------------------------------------- prose


def test_english_chunks_near_target_and_end_on_sentences():
    doc = make_doc(english_text(), fmt="txt")
    rows = chunk_document(doc, CFG)
    check_invariants(doc, rows)
    assert len(rows) >= 4
    for r in rows[:-1]:
        assert CFG.target_chars // 2 <= len(r["text"]) <= CFG.target_chars * 5 // 4
    for r in rows:
        assert r["text"][-1] in ".!?"
        # never cut after an abbreviation or inside a number/version
        assert not r["text"].endswith(("e.g.", "Dr.", "3.", "v1."))
        assert r["kind"] == "text" and r["heading_path"] == [] and r["page"] is None


def test_english_prefers_paragraph_breaks():
    para = " ".join(EN_SENTENCES[:3])  # about 230 chars
    text = "\n\n".join([para, para + " " + EN_SENTENCES[3], para])
    doc = make_doc(text, fmt="txt")
    rows = chunk_document(doc, ChunkConfig(target_chars=280, max_chars=600, min_chars=40, overlap_chars=0))
    check_invariants(doc, rows)
    # every cut is at a paragraph break although sentence ends lie closer to 280
    assert [r["text"] for r in rows] == text.split("\n\n")


def test_chinese_chunks_end_on_chinese_sentence_ends():
    doc = make_doc(chinese_text(), fmt="txt")
    cfg = ChunkConfig(target_chars=120, max_chars=240, min_chars=20, overlap_chars=20)
    rows = chunk_document(doc, cfg)
    check_invariants(doc, rows, cfg)
    assert len(rows) >= 5
    for r in rows[:-1]:
        assert cfg.target_chars // 2 <= len(r["text"]) <= cfg.target_chars * 5 // 4
    for r in rows:
        assert re.search(r"[。！？；][」”）]?$", r["text"]), r["text"]


def test_single_long_sentence_is_cut_at_max_preferring_commas():
    clause = "the valve opens when the pressure rises above the limit"  # 55 chars, no stop
    long_sentence = ", ".join([clause] * 30) + "."  # about 1700 chars, one sentence
    text = long_sentence + " " + EN_SENTENCES[0]
    doc = make_doc(text, fmt="txt")
    rows = chunk_document(doc, CFG)
    check_invariants(doc, rows)
    assert len(rows) >= 3
    pieces = [r for r in rows if r["end"] <= len(long_sentence)]
    for r in pieces:
        assert len(r["text"]) <= CFG.max_chars
        assert r["text"].endswith((",", ".")), r["text"][-20:]  # cut after a comma, not inside a word
    assert rows[-1]["text"].endswith(EN_SENTENCES[0])


def test_long_chinese_sentence_without_punctuation_is_cut_exactly_at_max():
    text = "字" * 1500 + "。"
    doc = make_doc(text, fmt="txt")
    rows = chunk_document(doc, CFG)
    check_invariants(doc, rows)
    assert [len(r["text"]) for r in rows] == [600, 600, 301]


def test_sentence_that_fits_is_never_cut():
    # 3 sentences of ~250 chars: target 300 would be mid-sentence, max allows whole sentences
    s = "Word " + "word " * 48 + "end."
    text = " ".join([s, s, s])
    doc = make_doc(text, fmt="txt")
    rows = chunk_document(doc, ChunkConfig(target_chars=300, max_chars=600, min_chars=40, overlap_chars=0))
    check_invariants(doc, rows)
    assert [r["text"] for r in rows] == [s, s, s]


def test_small_tail_merges_instead_of_crumb():
    body = " ".join(EN_SENTENCES[:4])  # about 300 chars
    text = body + " Done."  # a 5-char tail
    doc = make_doc(text, fmt="txt")
    rows = chunk_document(doc, ChunkConfig(target_chars=290, max_chars=600, min_chars=40, overlap_chars=0))
    assert [r["text"] for r in rows] == [text]


# ---------------------------------------------------------------- overlap


def test_overlap_present_and_snapped_to_sentence_starts():
    doc = make_doc(english_text(8), fmt="txt")
    rows = chunk_document(doc, CFG)
    check_invariants(doc, rows)
    text = doc["text"]
    overlaps = 0
    for a, b in zip(rows, rows[1:]):
        if b["start"] < a["end"]:
            overlaps += 1
            assert a["end"] - b["start"] <= CFG.target_chars // 2
            assert re.search(r"[.!?]\s+$", text[: b["start"]]), text[b["start"] - 10 : b["start"] + 10]
            assert b["end"] > a["end"]
    assert overlaps >= len(rows) // 2


def test_no_overlap_when_disabled():
    doc = make_doc(english_text(8), fmt="txt")
    rows = chunk_document(doc, ChunkConfig(target_chars=300, max_chars=600, min_chars=40, overlap_chars=0))
    check_invariants(doc, rows)
    assert all(b["start"] >= a["end"] for a, b in zip(rows, rows[1:]))


# ---------------------------------------------------------------- sections and pages

MD = (
    "Preface text before any heading. It has two sentences.\n\n"
    "# Guide\n\nThe guide explains the plant. " + " ".join(EN_SENTENCES[:5]) + "\n\n"
    "## Safety\n\n" + " ".join(EN_SENTENCES) + "\n\n"
    "## Valves\n\nValves are checked daily. They are replaced every two years.\n\n"
    "# Appendix\n\n" + " ".join(EN_SENTENCES[2:6]) + "\n"
)


def assert_within_sections(rows: list[dict], sections: list[Section], n: int) -> None:
    """No chunk crosses a section start or end, and each chunk in a section has its deepest section's headings."""
    boundaries = sorted({0, n} | {s.start for s in sections} | {s.end for s in sections})
    for r in rows:
        inside = [b for b in boundaries if r["start"] < b < r["end"]]
        assert inside == [], r["text"][:60]
    for r in [r for r in rows if r["heading_path"]]:
        sec = max((s for s in sections if s.start <= r["start"] < s.end), key=lambda s: s.level)
        assert r["heading_path"] == sec.heading_path


def test_heading_paths_and_no_chunk_crosses_a_section():
    sections = markdown_sections(MD)
    doc = make_doc(MD, sections=sections)
    rows = chunk_document(doc, CFG)
    check_invariants(doc, rows)
    assert_within_sections(rows, sections, len(MD))
    paths = [r["heading_path"] for r in rows]
    assert paths[0] == []
    assert rows[0]["text"] == "Preface text before any heading. It has two sentences."
    assert ["Guide"] in paths and ["Guide", "Safety"] in paths and ["Guide", "Valves"] in paths
    assert paths[-1] == ["Appendix"]
    valves = [r for r in rows if r["heading_path"] == ["Guide", "Valves"]]
    assert [r["text"] for r in valves] == [
        "## Valves\n\nValves are checked daily. They are replaced every two years."
    ]


def test_pages_follow_chunk_start():
    page_texts = [english_text(2), chinese_text(2), english_text(3)]
    text = "\n\n".join(page_texts)
    pages, pos = [], 0
    for i, pt in enumerate(page_texts, start=1):
        pages.append(Page(i, pos, pos + len(pt)))
        pos += len(pt) + 2
    doc = make_doc(text, fmt="pdf", pages=pages)
    rows = chunk_document(doc, CFG)
    check_invariants(doc, rows)
    prev_end = 0
    for r in rows:
        own_start = max(r["start"], min(prev_end, r["end"] - 1))  # first character after the overlap
        while text[own_start].isspace():
            own_start += 1
        expected = next(p.page for p in pages if p.start <= own_start < p.end)
        assert r["page"] == expected
        prev_end = r["end"]
    assert {r["page"] for r in rows} == {1, 2, 3}


def test_overlap_across_a_page_break_keeps_the_new_page():
    """A chunk whose overlap reaches back into page 1 but whose own text is on page 2 is on page 2."""
    page_texts = [english_text(3), english_text(3)]
    text = "\n\n".join(page_texts)
    pages = [Page(1, 0, len(page_texts[0])), Page(2, len(page_texts[0]) + 2, len(text))]
    rows = chunk_document(make_doc(text, fmt="pdf", pages=pages), ChunkConfig(target_chars=400, max_chars=800, min_chars=50, overlap_chars=120))
    crossing = [(prev, r) for prev, r in zip(rows, rows[1:]) if r["start"] < pages[0].end <= prev["end"]]
    assert crossing, "the fixture must have an overlap that reaches back over the page break"
    for _, r in crossing:
        assert r["page"] == 2


# ---------------------------------------------------------------- tables, code, records

TABLE = "| part | size | owner |\n|---|---|---|\n" + "".join(f"| valve-{i} | {i * 10} mm | team {i % 3} |\n" for i in range(12))


def test_markdown_table_under_max_stays_whole():
    table = TABLE.rstrip("\n")
    text = english_text(2) + "\n\n" + table + "\n\n" + english_text(1)
    doc = make_doc(text)
    rows = chunk_document(doc, CFG)
    check_invariants(doc, rows)
    tables = [r for r in rows if r["kind"] == "table"]
    assert [r["text"] for r in tables] == [table]
    assert len(table) < CFG.max_chars


def test_big_table_split_at_row_boundaries():
    table = "| part | size | owner |\n|---|---|---|\n" + "".join(
        f"| valve-{i} | {i * 10} mm | team {i % 3} |\n" for i in range(60)
    )
    doc = make_doc(table)
    rows = chunk_document(doc, CFG)
    check_invariants(doc, rows)
    assert len(rows) >= 3 and {r["kind"] for r in rows} == {"table"}
    for r in rows:
        assert r["text"].startswith("|") and r["text"].endswith("|")
        assert r["start"] == 0 or table[r["start"] - 1] == "\n"
    assert all(b["start"] >= a["end"] for a, b in zip(rows, rows[1:]))


def test_short_caption_merges_into_table():
    text = "Parts:\n" + TABLE
    doc = make_doc(text)
    rows = chunk_document(doc, CFG)
    assert [(r["text"], r["kind"]) for r in rows] == [(text.strip(), "table")]


PY = '''import os


def load(path):
    """Read a file."""
    with open(path) as f:
        return f.read()


def save(path, data):
    with open(path, "w") as f:
        f.write(data)
    return len(data)


@cache
def size(path):
    # the size in bytes
    return os.path.getsize(path)


class Store:
    """Keeps blobs."""

    def __init__(self, root):
        self.root = root

    def get(self, key):
        return load(os.path.join(self.root, key))

    def put(self, key, data):
        return save(os.path.join(self.root, key), data)


def main():
    store = Store("/tmp")
    store.put("a", "b")
    print(store.get("a"))
'''


def test_code_split_at_function_boundaries():
    doc = make_doc(PY, fmt="code")
    cfg = ChunkConfig(target_chars=150, max_chars=400, min_chars=20, overlap_chars=0)
    rows = chunk_document(doc, cfg)
    check_invariants(doc, rows, cfg)
    assert {r["kind"] for r in rows} == {"code"}
    assert len(rows) >= 4
    for r in rows:
        assert r["start"] == 0 or PY[r["start"] - 1] == "\n"  # never mid-line
        assert r["end"] == len(PY.rstrip()) or PY[r["end"]] == "\n"
        assert re.match(r"(import |def |@|class )", r["text"]), r["text"][:30]
    # the decorator stays with its function
    assert any("@cache\ndef size" in r["text"] for r in rows)
    assert not any(r["text"].startswith("def size") for r in rows)
    # every top-level unit (import, function, decorated function, class) sits whole inside one chunk
    for unit in PY.strip().split("\n\n\n"):
        assert sum(unit in r["text"] for r in rows) == 1, unit[:30]


def test_code_class_split_at_blank_lines_between_methods():
    doc = make_doc(PY, fmt="code")
    cfg = ChunkConfig(target_chars=80, max_chars=150, min_chars=10, overlap_chars=0)
    rows = chunk_document(doc, cfg)
    check_invariants(doc, rows, cfg)
    assert any(r["text"].startswith("def get(self, key):") for r in rows)  # a method piece, indentation stripped


def test_fenced_code_in_markdown_is_code():
    fence = "```python\n" + PY.split("\n\n\n@cache")[0] + "\n```"
    text = english_text(1) + "\n\n" + fence + "\n\n" + english_text(1)
    doc = make_doc(text)
    rows = chunk_document(doc, CFG)
    check_invariants(doc, rows)
    code = [r for r in rows if r["kind"] == "code"]
    assert "".join(r["text"] for r in code).replace("\n", "") == fence.replace("\n", "")
    assert code[0]["text"].startswith("```python") and code[-1]["text"].endswith("```")
    assert rows[0]["kind"] == "text" and rows[-1]["kind"] == "text"
    assert {r["code_lang"] for r in code} == {"python"}, "every piece of the block carries the fence language"
    assert {r["code_lang"] for r in rows if r["kind"] != "code"} == {None}


def test_small_code_blocks_stay_code_chunks_in_markdown_and_html():
    """A one-line fence or <pre> is a code chunk of its own (synthesis routes kind code to code_tasks)."""
    from infuse.operators.parsers import parser_for

    md = "# Install\n\nRun this once on every node:\n\n```bash\npip install lotusdb\n```\n\nThen restart it."
    html = ("<html><body><h1>Install</h1><p>Run this once on every node:</p>"
            "<pre><code class='language-bash'>pip install lotusdb</code></pre><p>Then restart it.</p></body></html>")
    for name, data in (("i.md", md), ("i.html", html)):
        parsed = parser_for(name).parse(data.encode(), name)
        doc = document_row("d" * 64, name, parser_for(name).format, parsed)
        rows = chunk_document(doc, CFG)
        code = [r for r in rows if r["kind"] == "code"]
        assert [(r["text"], r["code_lang"]) for r in code] == [("```bash\npip install lotusdb\n```", "bash")], name


def test_code_file_chunks_carry_the_file_language():
    parsed = ParsedDoc(title="x.py", text=PY, metadata={"language": "python"})
    rows = chunk_document(document_row("d" * 64, "x.py", "code", parsed), CFG)
    assert {(r["kind"], r["code_lang"]) for r in rows} == {("code", "python")}


def test_record_fits_in_one_chunk():
    record = '{"id": 7, "name": "valve", "notes": "Checked daily. Replaced every two years. See the manual."}'
    doc = make_doc(record, fmt="jsonl")
    rows = chunk_document(doc, CFG)
    assert [(r["text"], r["kind"]) for r in rows] == [(record, "record")]


def test_csv_over_max_split_at_lines():
    csv = "id,name,size\n" + "".join(f"{i},valve-{i},{i * 10}\n" for i in range(100))
    doc = make_doc(csv, fmt="csv")
    rows = chunk_document(doc, CFG)
    check_invariants(doc, rows)
    assert len(rows) >= 2 and {r["kind"] for r in rows} == {"record"}
    for r in rows:
        assert r["start"] == 0 or csv[r["start"] - 1] == "\n"


# ---------------------------------------------------------------- edge cases


def test_empty_and_whitespace_documents_give_no_chunks():
    assert chunk_document(make_doc(""), CFG) == []
    assert chunk_document(make_doc("  \n\n \t "), CFG) == []


def test_leading_and_trailing_whitespace_stripped_by_offsets():
    text = "\n\n   Hello there. This is short.   \n\n"
    doc = make_doc(text, fmt="txt")
    rows = chunk_document(doc, CFG)
    assert [(r["text"], r["start"], r["end"]) for r in rows] == [("Hello there. This is short.", 5, 32)]


def test_deterministic():
    doc = make_doc(MD, sections=markdown_sections(MD))
    assert chunk_document(doc, CFG) == chunk_document(doc, CFG)


def test_bad_section_offsets_do_not_crash():
    text = english_text(2)
    doc = make_doc(text, sections=[Section(["A"], 1, -5, 10_000), Section(["B"], 2, 50, 20)])
    rows = chunk_document(doc, CFG)
    check_invariants(doc, rows)
    assert {tuple(r["heading_path"]) for r in rows} == {("A",)}


def test_row_from_pandas_with_numpy_lists():
    """Rows read back through pandas carry numpy arrays for list columns; they must work like lists."""
    import pyarrow as pa

    from infuse.operators.parsers.document import DOCUMENT_SCHEMA

    doc = make_doc(MD, sections=markdown_sections(MD), pages=[Page(1, 0, len(MD))])
    row = pa.Table.from_pylist([doc], schema=DOCUMENT_SCHEMA).to_pandas().to_dict("records")[0]
    assert chunk_document(row, CFG) == chunk_document(doc, CFG)


def test_many_sections_scale_linearly():
    """Chunking time grows with the number of sections, not with its square: a region lookup that scanned every
    section made a few thousand sections take seconds. Timed against the same document at 1/20 the size, in the
    same test (best of a few runs each): linear is 20x, quadratic 400x; the bound is 3x linear."""
    import time

    def doc(n: int) -> dict:
        text = "\n\n".join(f"## Part {i}\n\nValves are checked daily. Part {i} is long enough to keep."
                           for i in range(n))
        return make_doc(text, sections=markdown_sections(text))

    def best_s(d: dict, runs: int) -> float:
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            chunk_document(d, CFG)
            times.append(time.perf_counter() - t0)
        return min(times)

    small, big = doc(300), doc(6000)
    rows = chunk_document(big, CFG)
    assert len(rows) == 6000 and rows[1234]["heading_path"] == ["Part 1234"]
    ratio = best_s(big, 3) / best_s(small, 7)
    assert ratio < 60, f"20x the sections took {ratio:.0f}x the time (linear: 20x, quadratic: 400x)"


@pytest.mark.parametrize("seed", range(25))
def test_invariants_on_random_mixed_documents(seed):
    """Random mixes of prose, Chinese, tables, fences, long runs and headings keep every invariant."""
    import random

    rnd = random.Random(seed)
    fragments = [
        lambda: " ".join(rnd.choice(EN_SENTENCES) for _ in range(rnd.randint(1, 8))),
        lambda: "".join(rnd.choice(ZH_SENTENCES) for _ in range(rnd.randint(1, 10))),
        lambda: TABLE * rnd.randint(1, 3),
        lambda: "```\n" + PY[: rnd.randint(10, len(PY))] + "\n```",
        lambda: "x" * rnd.randint(1, 1500),
        lambda: "## " + rnd.choice(["A", "B", "C"]),
        lambda: "- item one\n- item two\n  continued",
        lambda: " \n \t",
    ]
    text = rnd.choice(["\n\n", "\n", " "]).join(rnd.choice(fragments)() for _ in range(rnd.randint(1, 25)))
    target = rnd.choice([60, 200, 500])
    cfg = ChunkConfig(target_chars=target, max_chars=target * rnd.choice([1, 2, 3]), min_chars=rnd.choice([5, 20]),
                      overlap_chars=rnd.choice([0, target // 5]))
    sections = markdown_sections(text)
    doc = make_doc(text, fmt=rnd.choice(["md", "txt", "code", "jsonl", "log"]), sections=sections)
    rows = chunk_document(doc, cfg)
    check_invariants(doc, rows, cfg)
    cuts = {s.start for s in sections} | {s.end for s in sections}
    assert not any(r["start"] < c < r["end"] for r in rows for c in cuts)
    assert chunk_document(doc, cfg) == rows
