"""A corpus of fictional facts for the knowledge benchmark: no model can know them before training.

Invented products, people, sites and error codes, each with numeric, named and
dated attributes, written as real documents (Markdown, HTML, DOCX, PDF, CSV,
XLSX), each in one language, Chinese or English. Next to the documents:
`facts.jsonl` (one line per fact: id, entity, attribute, value, aliases,
language, document) and `questions.jsonl`, the held-out questions for the
evaluate step's `user_questions`: short gold answers with aliases, worded
unlike the documents, their FAQ headings and the synthesis templates, and
about 15% that need two facts. The phrasings and name pools are in
bench/knowledge/templates.yaml.

Layout of --out: docs/ (the recipe's `input`), facts.jsonl, questions.jsonl,
corpus.json (what was made, and the parse check's result). The same seed gives
the same bytes, so a re-run hits the pipeline's caches.

English PDFs only by default: this repo's machines have no font with CJK
glyphs, and a benchmark must make the same corpus everywhere. `--zh-pdf FONT`
also writes Chinese PDFs with that TrueType font.

    python bench/knowledge_corpus.py --out runs/knowledge_bench/corpus --facts 80 --seed 0
"""
from __future__ import annotations

import argparse
import csv
import html
import io
import json
import math
import os
import random
import re
import sys
import zipfile
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Callable

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TEMPLATES = Path(__file__).resolve().parent / "knowledge" / "templates.yaml"
LANGS = ("en", "zh")
KIND_CYCLE = ("person", "product", "error", "site")  # the order entities are made in, per language
BATCH = {"person": 8, "product": 4, "error": 8, "site": 4}  # entities per document
# document formats per kind, one per batch in turn: a small corpus still has every format in both languages
ROTATION = {
    "en": {"product": ["md", "pdf", "html", "docx"], "person": ["csv", "xlsx", "docx"],
           "error": ["html", "md", "xlsx"], "site": ["pdf", "docx", "md"]},
    "zh": {"product": ["docx", "md", "html"], "person": ["xlsx", "csv", "docx"],
           "error": ["md", "html", "csv"], "site": ["html", "docx", "md"]},
}
RECORDS = ("csv", "xlsx")
MULTI_SHARE = 0.15  # of all questions
FROZEN = datetime(2026, 1, 1)  # the timestamp written into DOCX, XLSX and PDF files: same seed, same bytes
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")


@dataclass
class Entity:
    eid: str
    kind: str
    lang: str
    name: str
    values: dict[str, str] = field(default_factory=dict)  # attribute -> value, as the document states it
    aliases: dict[str, list[str]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)  # attribute -> eid of the entity it names (lead, manager)
    product: str = ""  # an error code's product
    doc: str = ""


@dataclass
class Fact:
    fact_id: str
    entity: str
    entity_id: str
    kind: str
    attribute: str
    field: str  # the attribute's name in the document's language
    value: str
    aliases: list[str]
    lang: str
    doc: str
    ref: str | None = None


@dataclass
class Doc:
    path: str
    lang: str
    kind: str
    fmt: str
    title: str
    intro: str
    entities: list[Entity]


@dataclass
class Content:
    """What a prose document says: per entity a heading and sentences, a summary table, FAQ items."""

    sections: list[tuple[str, list[str]]]
    header: list[str]
    rows: list[list[Any]]
    faq: list[tuple[str, str]]


def load_templates(path: Path = TEMPLATES) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# ---- values --------------------------------------------------------------------------------------------------
class Maker:
    """Draws names and values so that no value repeats within an attribute and no number repeats at all:
    a wrong answer can then never match a gold answer by accident."""

    def __init__(self, rng: random.Random, t: dict[str, Any]) -> None:
        self.rng, self.t, self.pools = rng, t, t["pools"]
        self.taken: set[tuple[str, str]] = set()
        self.numbers: set[int] = set()
        self.abbrs: set[str] = set()
        self.causes: dict[str, list[list[str]]] = {lang: [] for lang in LANGS}

    def unique(self, key: str, make: Callable[[], str]) -> str:
        """make() until the value is new for this key; after many tries the pool is spent: number it."""
        for _ in range(300):
            v = make()
            if (key, v) not in self.taken:
                self.taken.add((key, v))
                return v
        n = 2
        while (key, f"{v} {n}") in self.taken:
            n += 1
        self.taken.add((key, f"{v} {n}"))
        return f"{v} {n}"

    def number(self, lo: int, hi: int) -> int:
        for _ in range(10_000):
            n = self.rng.randint(lo, hi)
            if n not in self.numbers:
                self.numbers.add(n)
                return n
        raise ValueError(f"no unused number left in [{lo}, {hi}]")

    def fresh(self, name: str, lang: str | None = None) -> str:
        """A pool item not drawn before while there is one (names that share no stem are easier to tell apart)."""
        pool = self.pools[name] if lang is None else self.pools[name][lang]
        unused = [p for p in pool if (f"fresh:{name}", p) not in self.taken]
        choice = self.rng.choice(unused or pool)
        self.taken.add((f"fresh:{name}", choice))
        return choice

    def pick(self, name: str, lang: str | None = None) -> str:
        pool = self.pools[name] if lang is None else self.pools[name][lang]
        return self.rng.choice(pool)

    def date(self, key: str, y0: int, y1: int, lang: str) -> tuple[str, list[str]]:
        iso = self.unique(key, lambda: date(self.rng.randint(y0, y1), self.rng.randint(1, 12),
                                            self.rng.randint(1, 28)).isoformat())
        d = date.fromisoformat(iso)
        zh = f"{d.year}年{d.month}月{d.day}日"
        en = [f"{MONTHS[d.month - 1]} {d.day}, {d.year}", f"{d.day} {MONTHS[d.month - 1]} {d.year}",
              d.strftime("%Y/%m/%d")]
        return (iso, [*en, zh]) if lang == "en" else (zh, [iso, *en])

    def cause(self, lang: str, product: str) -> list[str]:
        """An error cause not yet used in this language (while the pool lasts) nor by this product."""
        if not self.causes[lang]:
            self.causes[lang] = list(self.pools["cause"])
            self.rng.shuffle(self.causes[lang])
        for i, c in enumerate(self.causes[lang]):
            if ("cause:" + product, c[0]) not in self.taken:
                self.taken.add(("cause:" + product, c[0]))
                return self.causes[lang].pop(i)
        raise ValueError(f"{product}: every error cause is used")


def with_commas(n: int) -> list[str]:
    return [f"{n:,}"] if n >= 1000 else []


def make_person(m: Maker, lang: str, eid: str) -> Entity:
    if lang == "en":
        name = m.unique("name", lambda: f"{m.pick('first_en')} {m.pick('last_en')}")
        role = m.unique("role:en", lambda: f"{m.pick('role_level', 'en')} {m.pick('role_kind', 'en')}")
        team = m.unique("team:en", lambda: f"{m.pick('team_a', 'en')} {m.pick('team_b', 'en')}")
    else:
        name = m.unique("name", lambda: m.pick("surname_zh") + m.pick("given_zh"))
        role = m.unique("role:zh", lambda: m.pick("role_level", "zh") + m.pick("role_kind", "zh"))
        team = m.unique("team:zh", lambda: m.pick("team_a", "zh") + m.pick("team_b", "zh"))
    city = m.unique(f"city:{lang}", lambda: m.pick("city", lang))
    emp = m.number(10000, 99999)
    start, start_aliases = m.date("date", 2012, 2025, lang)
    e = Entity(eid, "person", lang, name)
    e.values = {"role": role, "team": team, "city": city, "employee_id": f"EMP-{emp}", "start_date": start}
    e.aliases = {"city": [f"{city}市"] if lang == "zh" else [], "employee_id": [str(emp), f"EMP{emp}"],
                 "start_date": start_aliases}
    return e


def make_product(m: Maker, lang: str, eid: str, lead: Entity) -> Entity:
    prefix = m.fresh("product_prefix")
    name = m.unique("product", lambda: prefix + m.pick("product_suffix"))
    abbr, n = name[:4].upper(), 1
    while abbr in m.abbrs:  # the error codes' prefix: one per product
        abbr, n = f"{name[:3].upper()}{n}", n + 1
    m.abbrs.add(abbr)
    version = m.unique("version", lambda: f"{m.rng.randint(2, 14)}.{m.rng.randint(0, 19)}.{m.rng.randint(0, 9)}")
    port = m.number(2000, 9899)
    released, released_aliases = m.date("date", 2024, 2029, lang)
    conns = m.number(10000, 98000)
    price = m.number(120, 4900) if lang == "en" else m.number(900, 39000)
    e = Entity(eid, "product", lang, name, refs={"lead": lead.eid}, product=abbr)
    e.values = {"lead": lead.name, "port": str(port), "version": version, "release_date": released,
                "max_connections": str(conns), "price": str(price)}
    unit = [f"${price}", f"{price} USD"] if lang == "en" else [f"{price}元"]
    e.aliases = {"version": [f"v{version}"], "release_date": released_aliases, "max_connections": with_commas(conns),
                 "price": with_commas(price) + unit}
    return e


def make_error(m: Maker, lang: str, eid: str, product: Entity) -> Entity:
    symbol, meaning_en, meaning_zh, verb = m.cause(lang, product.name)
    e = Entity(eid, "error", lang, f"{product.product}_{symbol}", product=product.name)
    value = m.number(1000, 1999)
    e.values = {"value": str(value), "meaning": meaning_en if lang == "en" else meaning_zh,
                "remedy": f"{product.name.lower()}ctl {verb}"}
    return e


def make_site(m: Maker, lang: str, eid: str, manager: Entity) -> Entity:
    sep = " " if lang == "en" else ""
    place = m.fresh("site_place", lang)
    name = m.unique("site", lambda: place + sep + m.pick("site_type", lang))
    number = m.number(2, 399)
    street = m.pick("street", lang) + sep + m.pick("street_type", lang)
    address = f"{number} {street}" if lang == "en" else f"{street}{number}号"
    year = m.number(1960, 2011)
    capacity = m.number(150, 4800)
    e = Entity(eid, "site", lang, name, refs={"manager": manager.eid})
    e.values = {"manager": manager.name, "capacity": str(capacity), "opening_year": str(year), "address": address}
    short = address.replace(" Street", " St").replace(" Road", " Rd").replace(" Avenue", " Ave")
    e.aliases = {"capacity": with_commas(capacity), "opening_year": [f"{year}年"] if lang == "zh" else [],
                 "address": [short] if short != address else [f"{street} {number}号"] if lang == "zh" else []}
    return e


def make_entities(n_facts: int, rng: random.Random, t: dict[str, Any]) -> list[Entity]:
    """Entities in both languages with n_facts attributes in all (half each, English gets the odd one).

    Per language the kinds come in turn (person, product, error code, site), so each product's lead and
    each site's manager is a person already made; the last entity keeps only its first attributes.
    """
    m = Maker(rng, t)
    out: list[Entity] = []
    for lang, budget in (("en", math.ceil(n_facts / 2)), ("zh", n_facts // 2)):
        made: dict[str, list[Entity]] = defaultdict(list)
        left, turn = budget, 0
        while left > 0:
            kind = KIND_CYCLE[turn % len(KIND_CYCLE)]
            turn += 1
            eid = f"{lang}-{kind}-{len(made[kind]) + 1}"
            if kind == "person":
                e = make_person(m, lang, eid)
            elif kind == "product":
                e = make_product(m, lang, eid, made["person"][-1])
            elif kind == "error":
                e = make_error(m, lang, eid, made["product"][-1])
            else:
                e = make_site(m, lang, eid, rng.choice(made["person"]))
            order = list(t["kinds"][kind]["attrs"])
            e.values = {a: e.values[a] for a in order[:left]}
            e.refs = {a: r for a, r in e.refs.items() if a in e.values}
            left -= len(e.values)
            made[kind].append(e)
            out.append(e)
    return out


# ---- documents -------------------------------------------------------------------------------------------------
def plan_docs(entities: list[Entity], t: dict[str, Any], zh_pdf: bool = False) -> list[Doc]:
    """Entities of one language and kind, BATCH at a time, one document each, formats in ROTATION's turn."""
    groups: dict[tuple[str, str], list[Entity]] = defaultdict(list)
    for e in entities:
        groups[(e.lang, e.kind)].append(e)
    docs = []
    for (lang, kind), ents in groups.items():
        rotation = ROTATION[lang][kind]
        if lang == "zh" and zh_pdf and kind == "product":
            rotation = ["pdf", *rotation]
        spec = t["docs"][kind]
        for b in range(0, len(ents), BATCH[kind]):
            n = b // BATCH[kind] + 1
            fmt = rotation[(n - 1) % len(rotation)]
            path = f"{spec['slug']}_{lang}_{n}.{fmt}"
            batch = ents[b : b + BATCH[kind]]
            for e in batch:
                e.doc = path
            docs.append(Doc(path, lang, kind, fmt, spec["title"][lang].format(n=n), spec["intro"][lang], batch))
    return docs


def render(template: str, e: Entity, value: str = "", product: str = "") -> str:
    return template.format(name=e.name, v=value, product=product or e.product)


def content(doc: Doc, t: dict[str, Any], rng: random.Random) -> Content:
    """Sentences (one per fact, a random one of its `say` variants), the summary table and one FAQ per entity."""
    spec = t["kinds"][doc.kind]
    attrs = [a for a in spec["attrs"] if any(a in e.values for e in doc.entities)]
    header = [spec["title"][doc.lang]] + ([spec["product_label"][doc.lang]] if doc.kind == "error" else [])
    header += [spec["attrs"][a]["label"][doc.lang] for a in attrs]
    sections, rows, faq = [], [], []
    for e in doc.entities:
        sentences = []
        for a, v in e.values.items():
            say = spec["attrs"][a]["say"][doc.lang]
            sentences.append(render(rng.choice(say), e, v))
        sections.append((e.name, sentences))
        rows.append([e.name] + ([e.product] if doc.kind == "error" else []) + [e.values.get(a, "") for a in attrs])
        a = rng.choice(list(e.values))
        item = spec["attrs"][a]
        faq.append((render(item["faq"][doc.lang], e), render(item["say"][doc.lang][-1], e, e.values[a])))
    return Content(sections, header, rows, faq)


def join(sentences: list[str], lang: str) -> str:
    return (" " if lang == "en" else "").join(sentences)


def write_md(doc: Doc, c: Content, t: dict[str, Any]) -> bytes:
    out = [f"# {doc.title}", doc.intro, f"## {t['table_heading'][doc.lang]}", md_table(c.header, c.rows)]
    for head, sentences in c.sections:
        out += [f"## {head}", join(sentences, doc.lang)]
    out.append(f"## {t['faq_heading'][doc.lang]}")
    for q, a in c.faq:
        out += [f"### {q}", a]
    return ("\n\n".join(out) + "\n").encode()


def md_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_html(doc: Doc, c: Content, t: dict[str, Any]) -> bytes:
    esc = html.escape
    cells = lambda row, tag: "".join(f"<{tag}>{esc(str(v))}</{tag}>" for v in row)  # noqa: E731
    body = [f"<h1>{esc(doc.title)}</h1>", f"<p>{esc(doc.intro)}</p>", f"<h2>{esc(t['table_heading'][doc.lang])}</h2>",
            "<table>", f"<tr>{cells(c.header, 'th')}</tr>", *(f"<tr>{cells(r, 'td')}</tr>" for r in c.rows), "</table>"]
    for head, sentences in c.sections:
        body += [f"<h2>{esc(head)}</h2>", f"<p>{esc(join(sentences, doc.lang))}</p>"]
    body.append(f"<h2>{esc(t['faq_heading'][doc.lang])}</h2>")
    for q, a in c.faq:
        body += [f"<h3>{esc(q)}</h3>", f"<p>{esc(a)}</p>"]
    page = (f'<!DOCTYPE html>\n<html lang="{doc.lang}">\n<head>\n<meta charset="utf-8">\n<title>{esc(doc.title)}'
            f"</title>\n</head>\n<body>\n<main>\n" + "\n".join(body) + "\n</main>\n</body>\n</html>\n")
    return page.encode()


def write_docx(doc: Doc, c: Content, t: dict[str, Any]) -> bytes:
    import docx

    d = docx.Document()
    props = d.core_properties
    props.title, props.author = doc.title, t["company"][doc.lang]
    props.created = props.modified = props.last_printed = FROZEN
    d.add_heading(doc.title, level=0)
    d.add_paragraph(doc.intro)
    d.add_heading(t["table_heading"][doc.lang], level=1)
    table = d.add_table(rows=1 + len(c.rows), cols=len(c.header))
    table.style = "Table Grid"
    for i, row in enumerate([c.header, *c.rows]):
        for j, v in enumerate(row):
            table.cell(i, j).text = str(v)
    for head, sentences in c.sections:
        d.add_heading(head, level=1)
        d.add_paragraph(join(sentences, doc.lang))
    d.add_heading(t["faq_heading"][doc.lang], level=1)
    for q, a in c.faq:
        d.add_heading(q, level=2)
        d.add_paragraph(a)
    buf = io.BytesIO()
    d.save(buf)
    return freeze_zip(buf.getvalue())


def write_pdf(doc: Doc, c: Content, t: dict[str, Any], font: str | None = None) -> bytes:
    """Headings in the outline (the parser's sections), one sentence a line so no value is broken by a wrap."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_creation_date(FROZEN)
    pdf.set_title(doc.title)
    pdf.set_author(t["company"][doc.lang])
    family = "Helvetica"
    if doc.lang == "zh":
        if not font:
            raise ValueError(f"{doc.path}: a Chinese PDF needs a CJK font (--zh-pdf FONT)")
        pdf.add_font("cjk", fname=font)
        family = "cjk"
    pdf.add_page()

    def heading(text: str, level: int) -> None:
        pdf.set_font(family, size=(16, 13, 11)[level])
        pdf.start_section(text, level=level)
        pdf.multi_cell(0, 8, text, new_x="LMARGIN", new_y="NEXT")

    def lines(texts: list[str]) -> None:
        pdf.set_font(family, size=10)
        for text in texts:
            pdf.multi_cell(0, 5.5, text, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)

    heading(doc.title, 0)
    lines([doc.intro])
    for head, sentences in c.sections:
        heading(head, 1)
        lines(sentences)
    heading(t["faq_heading"][doc.lang], 1)
    for q, a in c.faq:
        heading(q, 2)
        lines([a])
    return bytes(pdf.output())


def write_csv(doc: Doc, c: Content) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(c.header)
    w.writerows(c.rows)
    return buf.getvalue().encode()


def write_xlsx(doc: Doc, c: Content) -> bytes:
    """Numbers as numeric cells (as a person would type them), everything else as text."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = doc.title[:31].replace(",", "")
    wb.properties.creator = "Corvane"
    ws.append(c.header)
    for row in c.rows:
        ws.append([int(v) if isinstance(v, str) and v.isdigit() else v for v in row])
    buf = io.BytesIO()
    wb.save(buf)
    return freeze_zip(buf.getvalue())


def freeze_zip(data: bytes) -> bytes:
    """The same archive with fixed entry times and document dates: office files otherwise carry 'now'."""
    stamp = FROZEN.strftime("%Y-%m-%dT%H:%M:%SZ")
    src = zipfile.ZipFile(io.BytesIO(data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            blob = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                blob = re.sub(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*", rb"\g<1>" + stamp.encode(), blob)
            dst.writestr(zipfile.ZipInfo(info.filename, date_time=FROZEN.timetuple()[:6]), blob,
                         compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def write_doc(doc: Doc, c: Content, t: dict[str, Any], font: str | None) -> bytes:
    if doc.fmt == "md":
        return write_md(doc, c, t)
    if doc.fmt == "html":
        return write_html(doc, c, t)
    if doc.fmt == "docx":
        return write_docx(doc, c, t)
    if doc.fmt == "pdf":
        return write_pdf(doc, c, t, font)
    if doc.fmt == "csv":
        return write_csv(doc, c)
    return write_xlsx(doc, c)


# ---- facts and questions ---------------------------------------------------------------------------------------
def make_facts(entities: list[Entity], t: dict[str, Any]) -> list[Fact]:
    facts = []
    for e in entities:
        for a, v in e.values.items():
            facts.append(Fact(f"f{len(facts) + 1:04d}", e.name, e.eid, e.kind, a,
                              t["kinds"][e.kind]["attrs"][a]["label"][e.lang], v, list(e.aliases.get(a, [])),
                              e.lang, e.doc, e.refs.get(a)))
    return facts


def question(q: str, f: Fact, kind: str, facts: list[Fact]) -> dict[str, Any]:
    row = {"question": q, "answer": f.value, "aliases": f.aliases, "doc": f.doc, "facts": [x.fact_id for x in facts],
           "lang": f.lang, "kind": kind, "attribute": f.attribute}
    return row


def single_questions(entities: list[Entity], facts: list[Fact], t: dict[str, Any],
                     rng: random.Random) -> list[dict[str, Any]]:
    """One held-out question per fact, a random one of its `ask` wordings."""
    by_id = {e.eid: e for e in entities}
    out = []
    for f in facts:
        e = by_id[f.entity_id]
        asks = t["kinds"][f.kind]["attrs"][f.attribute]["ask"][f.lang]
        out.append(question(render(rng.choice(asks), e), f, "single", [f]))
    return out


def multi_questions(entities: list[Entity], facts: list[Fact], t: dict[str, Any], rng: random.Random,
                    n: int) -> list[dict[str, Any]]:
    """Up to n questions that need two facts, the combination types taken in turn."""
    by_id = {e.eid: e for e in entities}
    fact_of = {(f.entity_id, f.attribute): f for f in facts}
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for name, spec in t["multi"].items():
        (k1, a1), (k2, a2) = (s.split(".") for s in spec["facts"])
        for e in entities:
            first = fact_of.get((e.eid, a1)) if e.kind == k1 else None
            if first is None:
                continue
            target = by_id[first.ref] if first.ref else e  # a link to a person, or a second fact of e itself
            second = fact_of.get((target.eid, a2)) if target.kind == k2 else None
            if second is None:
                continue
            q = spec["ask"][e.lang].format(a=e.name, k=first.value, product=e.product)
            row = question(q, second, "multi", [first, second])
            found[name].append(row | {"attribute": name, "docs": sorted({first.doc, second.doc})})
    for rows in found.values():
        rng.shuffle(rows)
    out: list[dict[str, Any]] = []
    while len(out) < n and any(found.values()):
        for name in list(found):
            if found[name] and len(out) < n:
                out.append(found[name].pop())
    return out


# ---- the corpus -------------------------------------------------------------------------------------------------
def build(out: Path, n_facts: int, seed: int, zh_pdf: str | None = None) -> dict[str, Any]:
    """Write the corpus under out (docs/, facts.jsonl, questions.jsonl, corpus.json); return its summary."""
    if n_facts < 8:
        raise ValueError("--facts: at least 8 (a person and a product in each language)")
    t = load_templates()
    rng = random.Random(seed)
    entities = make_entities(n_facts, rng, t)
    docs = plan_docs(entities, t, zh_pdf=bool(zh_pdf))
    folder = out / "docs"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():  # a smaller corpus must not keep a larger one's documents
        if old.is_file():
            old.unlink()
    for d in docs:
        (folder / d.path).write_bytes(write_doc(d, content(d, t, rng), t, zh_pdf))
    facts = make_facts(entities, t)
    single = single_questions(entities, facts, t, rng)
    multi = multi_questions(entities, facts, t, rng, round(len(single) * MULTI_SHARE / (1 - MULTI_SHARE)))
    questions = single + multi
    write_jsonl(out / "facts.jsonl", [asdict(f) for f in facts])
    write_jsonl(out / "questions.jsonl", questions)
    summary = {"seed": seed, "facts": len(facts), "entities": len(entities), "documents": len(docs),
               "questions": len(questions), "multi_fact_questions": len(multi),
               "by_format": count(d.fmt for d in docs), "by_language": count(d.lang for d in docs),
               "facts_by_kind": count(f.kind for f in facts), "zh_pdf_font": zh_pdf,
               "docs": [{"path": d.path, "format": d.fmt, "lang": d.lang, "kind": d.kind,
                         "facts": sum(len(e.values) for e in d.entities)} for d in docs]}
    (out / "corpus.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return summary


def count(items: Any) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for x in items:
        out[x] += 1
    return dict(sorted(out.items()))


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ---- the parse check ------------------------------------------------------------------------------------------
def parsed(path: Path) -> tuple[str, list[str]]:
    """The text the parse step gets from a file (its records joined) and the records' titles: the same call the
    pipeline makes (ingest.parse_file), so a file it would reject is a problem here too."""
    from infuse.operators.parsers.ingest import FileEntry, parse_file

    data = path.read_bytes()
    rows, rejects = parse_file(FileEntry(path.name, path, len(data), ""), data)
    if rejects:
        raise ValueError("; ".join(f"{r.reason}: {r.message}" for r in rejects))
    records = [r["title"] for r in rows if ":" in r["doc_id"]]  # a record file's rows: "<sha256>:<index>"
    return "\n\n".join(r["text"] for r in rows), records


def sentences(text: str) -> list[str]:
    return [s.strip(" #|-") for s in re.split(r"(?<=[.?!])\s+|(?<=[。？！])|\n+", text) if len(s.strip(" #|-")) > 3]


def trigrams(text: str) -> set[tuple[str, ...]]:
    from infuse.operators.common.tokens import ngrams, tokens

    return set(ngrams(tokens(text), 3))


def jaccard(a: set[Any], b: set[Any]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def faq_headings(facts: list[dict[str, Any]]) -> set[str]:
    """The FAQ heading of every fact's attribute, as the documents word it."""
    t = load_templates()
    return {t["kinds"][f["kind"]]["attrs"][f["attribute"]]["faq"][f["lang"]].format(name=f["entity"]) for f in facts}


def check(out: Path, max_overlap: float = 0.6) -> dict[str, Any]:
    """Parse every document with infuse's parsers and check the corpus against what they read.

    problems: a file the parse step rejects; a fact whose value is not verbatim in its parsed document; a
    question naming an unknown fact, asked verbatim in a document or as an FAQ heading (written or not), or
    sharing more than max_overlap of its token 3-grams with a sentence of the documents (the evaluate step's
    leakage check fails a run at 0.9 against the training prompts); no multi-fact question.
    warnings: a record whose parsed title is not the entity's name (templates then ask about "file#0").
    """
    facts = read_jsonl(out / "facts.jsonl")
    questions = read_jsonl(out / "questions.jsonl")
    problems, warnings = [], []
    texts: dict[str, str] = {}
    for path in sorted((out / "docs").iterdir()):
        try:
            texts[path.name], titles = parsed(path)
        except Exception as e:  # a file infuse cannot read is the finding
            problems.append(f"{path.name}: does not parse: {type(e).__name__}: {e}")
            continue
        names = {f["entity"] for f in facts if f["doc"] == path.name}
        for title in titles:
            if title not in names:
                warnings.append(f"{path.name}: a record's parsed title is {title!r}, not the entity's name (the "
                                f"parser takes no title from this file's first column)")
                break
    for f in facts:
        text = texts.get(f["doc"])
        if text is not None and f["value"] not in text:
            near = f["value"] in " ".join(text.split())
            problems.append(f"{f['fact_id']} {f['doc']}: value {f['value']!r} of {f['entity']}.{f['attribute']} is "
                            f"{'split by a line break' if near else 'not'} in the parsed text")
    ids = {f["fact_id"] for f in facts}
    faq = faq_headings(facts)  # every FAQ heading the documents could hold, written or not
    grams = [(s, trigrams(s)) for s in [*(s for text in texts.values() for s in sentences(text)), *faq]]
    worst = 0.0
    for q in questions:
        missing = [x for x in q["facts"] if x not in ids]
        if missing:
            problems.append(f"question {q['question']!r} names unknown facts {missing}")
        if any(q["question"] in text for text in texts.values()) or q["question"] in faq:
            problems.append(f"question {q['question']!r} is verbatim in a document or an FAQ heading")
        mine = trigrams(q["question"])
        score, sentence = max(((jaccard(mine, g), s) for s, g in grams), default=(0.0, ""))
        worst = max(worst, score)
        if score > max_overlap:
            problems.append(f"question {q['question']!r} shares {score:.2f} of its 3-grams with {sentence!r}")
    if not any(len(q["facts"]) > 1 for q in questions):
        problems.append("no question combines two facts")
    return {"documents": len(texts), "facts_checked": len(facts), "questions_checked": len(questions),
            "max_question_overlap": round(worst, 3), "problems": problems, "warnings": warnings}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--facts", type=int, default=300,
                    help="names and numbers stay distinct up to ~800; error meanings repeat past ~500")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--zh-pdf", metavar="FONT", default=None, help="a TrueType font with CJK glyphs: Chinese PDFs too")
    ap.add_argument("--no-check", action="store_true", help="skip parsing the documents back")
    a = ap.parse_args()
    summary = build(a.out, a.facts, a.seed, a.zh_pdf)
    print(f"{a.out}: {summary['facts']} facts of {summary['entities']} entities in {summary['documents']} documents "
          f"{summary['by_format']} {summary['by_language']}; {summary['questions']} questions, "
          f"{summary['multi_fact_questions']} of them on two facts")
    if a.no_check:
        return
    result = check(a.out)
    summary["check"] = result
    (a.out / "corpus.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    for w in result["warnings"]:
        print("warning:", w)
    for p in result["problems"]:
        print("PROBLEM:", p)
    print(f"parse check: {result['documents']} documents, {result['facts_checked']} facts, "
          f"{result['questions_checked']} questions; max 3-gram overlap of a question with a document sentence "
          f"{result['max_question_overlap']}; {len(result['problems'])} problem(s)")
    sys.exit(1 if result["problems"] else 0)


if __name__ == "__main__":
    main()
