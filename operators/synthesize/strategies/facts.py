"""facts (no LLM): every fact of a document, asked in several phrasings, answered in a full sentence.

WHY: one phrasing per fact is memorised but cannot be recalled from another question (Physics of LMs 3.1,
arXiv 2309.14316); accuracy rises with the number of restatements (Ovadia et al., arXiv 2312.05934), and
QA about the facts trained with the documents adds more (PIT, arXiv 2402.12847). The only LLM on a CPU
machine is too weak to write those restatements, so they come from templates over the facts that
`fact_finder` reads from records, tables, value-bearing sentences and FAQ headings.

Each sample is in one language; a field name is translated when the question's language differs from it,
and a fact whose field cannot be put in a language is not asked in it. Every fact's samples carry
`meta.fact_id`, the short gold answer (`short`, `aliases`) and, on exactly one phrasing, `heldout: true`:
mix holds that phrasing out for the facts it puts in eval, so an eval question is never in train while
its fact is.
"""
from __future__ import annotations

import re
from typing import Any

from infuse.operators.common.base import stable_hash
from infuse.operators.synthesize import fact_finder as ff
from infuse.operators.synthesize.config import SynthConfig
from infuse.operators.synthesize.core import Context, ItemFailure, Track, doc_metadata
from infuse.operators.synthesize.schema import Draft, WorkItem
from infuse.operators.synthesize.strategies.record_template import record_fields, record_title
from infuse.operators.synthesize.strategies.section_template import sections_with_body
from infuse.operators.synthesize.strategy import DocumentStrategy, Template

STRATEGY = "facts"
VERSION = "facts.v1"
FIELD_KINDS = ("field", "row")  # facts of a record or a table row: subject, attribute, value

# Field names both ways, for questions in the other language of a bilingual record (lower-case keys).
GLOSSARY = {
    "name": "名称", "value": "值", "meaning": "含义", "description": "描述", "version": "版本", "port": "端口",
    "default": "默认值", "type": "类型", "owner": "负责人", "email": "邮箱", "phone": "电话", "address": "地址",
    "city": "城市", "date": "日期", "release date": "发布日期", "price": "价格", "capacity": "容量", "role": "职位",
    "team": "团队", "office": "办公地点", "id": "编号", "employee id": "工号", "start date": "入职日期",
    "status": "状态", "code": "代码", "remedy": "处理建议", "syntax": "语法", "return value": "返回值",
    "notes": "备注", "note": "备注", "requirements": "要求", "see also": "另请参阅", "limit": "上限", "size": "大小",
    "unit": "单位", "location": "位置", "manager": "经理", "opening year": "开业年份", "model": "型号",
    "category": "类别", "author": "作者", "license": "许可证", "path": "路径", "timeout": "超时时间",
}
GLOSSARY_ZH = {zh: en for en, zh in GLOSSARY.items()}

QUESTIONS = {
    "en": ["What is the {attr} of {subj}?", "What {attr} does {subj} have?", "Tell me the {attr} of {subj}.",
           "For {subj}, what is the {attr}?", "Which {attr} is given for {subj}?", "Do you know the {attr} of {subj}?"],
    "zh": ["{subj}的{attr}是什么？", "请问{subj}的{attr}是{what}？", "告诉我{subj}的{attr}。", "{subj}对应的{attr}是？",
           "关于{subj}，它的{attr}是什么？", "我想了解{subj}的{attr}。"],
}
ANSWERS = {
    "en": ["The {attr} of {subj} is {value}.", "For {subj}, the {attr} is {value}."],
    "zh": ["{subj}的{attr}是{value}。", "{subj}对应的{attr}为{value}。"],
}
SENTENCE_QUESTIONS = {
    "en": ["In {topic}, {wh}?", "According to {doc}, {wh}?", "Fill in the blank: {cloze}", "Regarding {topic}: {wh}?",
           "{doc} says that {wh}?", "Complete this statement about {topic}: {cloze}"],
    "zh": ["{topic}中，{wh}？", "根据{doc}，{wh}？", "填空：{cloze}", "请问在{topic}里，{wh}？", "{doc}提到，{wh}？",
           "关于{topic}，补全这句话：{cloze}"],
}
SENTENCE_ANSWERS = {"en": ["{sent}", "According to {doc}: {sent}"], "zh": ["{sent}", "{doc}中写道：{sent}"]}
FAQ_QUESTIONS = {
    "en": ["{q}", "Quick question about {doc}: {q}", "{q} Please explain.", "I have a question: {q}",
           "Could you tell me: {q}", "About {doc}. {q}"],
    "zh": ["{q}", "关于{doc}：{q}", "{q}请说明一下。", "想问一下，{q}", "请告诉我：{q}", "{doc}相关问题：{q}"],
}
INTRODUCE = {"en": "Tell me about {subj}.", "zh": "介绍一下{subj}。"}
INTRO_LINE = {"en": "The {attr} of {subj} is {value}.", "zh": "{subj}的{attr}是{value}。"}


def _attr(name: str, lang: str) -> str | None:
    """The field name in `lang`: itself when it is already in it, else the glossary's, else None."""
    if ff.has_cjk(name) and re.search(r"[A-Za-z]{3,}", name):  # "是否需要迁移 Migration"
        return monolingual(name, lang) or None
    own = "zh" if ff.has_cjk(name) else "en"
    if own == lang:
        return name.lower() if lang == "en" and name[:1].isupper() and name[1:].islower() else name
    return GLOSSARY.get(name.strip().lower()) if lang == "zh" else GLOSSARY_ZH.get(name.strip())


_CJK = r"\u3000-\u303f\u4e00-\u9fff\uff00-\uffef"
_TRAILING_EN = re.compile(rf"^(.*[{_CJK}][^A-Za-z]*?)\s+([A-Z][a-z'’]+(?: [A-Za-z'’]+)*)$")
_LEADING_EN = re.compile(rf"^([A-Z][A-Za-z'’ ]*?)\s+([{_CJK}].*)$")


def monolingual(text: str, lang: str) -> str:
    """A bilingual label in one language: "容量规划 Capacity Planning" -> "容量规划" or "Capacity Planning",
    "写入延迟 / write latency" -> one side. Identifiers and commands (LotusDB, lotusctl migrate) stay."""
    if " > " in text:
        return " > ".join(p for p in (monolingual(x, lang) for x in text.split(" > ")) if p)
    if not (ff.has_cjk(text) and re.search(r"[A-Za-z]{2,}", text)):
        return text if lang == "zh" or not ff.has_cjk(text) else ""
    sides = _divided(text) or _around_english(text)
    if sides is None:  # a Chinese label with identifiers in it ("LotusDB 的端口"): Chinese only
        return text if lang == "zh" else ""
    return sides[0] if lang == "zh" else sides[1]


def _divided(text: str) -> tuple[str, str] | None:
    """(Chinese, English) of a label whose two sides a slash or a bracket divides."""
    for sep in (" / ", "/", "（", "("):
        if sep in text:
            sides = [x.strip(" )）") for x in text.split(sep, 1)]
            zh = [x for x in sides if ff.has_cjk(x)]
            en = [x for x in sides if not ff.has_cjk(x)]
            if zh and en:
                return zh[0], en[0]
    return None


def _around_english(text: str) -> tuple[str, str] | None:
    """(Chinese, English) of a label with an English name after or before the Chinese one."""
    m = _TRAILING_EN.match(text)
    if m:
        return m.group(1).strip(), m.group(2).strip()
    m = _LEADING_EN.match(text)
    if m:
        return m.group(2).strip(), m.group(1).strip()
    return None


def _what(value: str) -> str:
    """多少 for a number (with or without its unit), else 什么."""
    return "多少" if ff.VALUE.fullmatch(value.strip()) and re.match(r"[-+−]?\d", value.strip()) else "什么"


def _value(value: str, lang: str) -> str:
    """A value as an answer says it: one language ("否 No" -> "否" / "No"), no closing stop of its own."""
    if ff.has_cjk(value) and re.search(r"[A-Za-z]{2,}", value):
        value = monolingual(value, lang) or value
    return value.strip().rstrip("。.；;")


def _wh(sent: str, start: int, end: int, lang: str) -> tuple[str | None, str]:
    """(the clause that states the value, asked as a question; the sentence with a blank for the value)."""
    cloze = sent[:start] + "____" + sent[end:]
    word = _wh_word(sent[start:end], lang)
    return _as_question(_clause(sent, start, end, lang, word), word, lang), cloze.strip()


def _wh_word(value: str, lang: str) -> str:
    """The question word that stands for the value: when for a date, how much for a quantity, else what."""
    if lang == "zh":
        return "什么时候" if re.fullmatch(ff._DATE, value) else _what(value)
    quantity = re.search(r"\d\s?\S*[%A-Za-z]", value) and not re.fullmatch(r"[\d.]+", value)
    return "when" if re.fullmatch(ff._DATE, value) else ("how much" if quantity else "what")


def _clause(sent: str, start: int, end: int, lang: str, word: str) -> str:
    """The clause around the value with `word` in its place; the clause before joins one too short to stand
    alone."""
    seps = r"[，,；;：:]" if lang == "zh" else r"[,;:]\s|\s(?:and|but|while)\s"
    bounds = [0] + [m.end() for m in re.finditer(seps, sent)] + [len(sent) + 1]
    lo = max(b for b in bounds if b <= start)
    hi = min(b for b in bounds if b > end) - 1
    clause = sent[lo:start] + word + sent[end:hi]
    if _too_short(clause, lang) and lo > 0:
        lo = max(b for b in bounds if b < lo - 1) if any(b < lo - 1 for b in bounds) else 0
        clause = sent[lo:start] + word + sent[end:hi]
    return clause


def _as_question(clause: str, word: str, lang: str) -> str | None:
    """The clause tidied into a question body; None when the value is a call or sits in brackets (it is then
    asked as a blank only)."""
    clause = clause.strip().rstrip("。.!！?？;；,，")
    if lang == "zh":  # "维护 LotusDB 多少 的" -> "维护 LotusDB 多少的"
        clause = re.sub(rf"\s*({word})\s*(?=[\u4e00-\u9fff])", r"\1", clause)
    if clause.count("(") != clause.count(")") or clause.count("（") != clause.count("）"):
        return None
    if lang == "en" and clause[:1].isupper() and not clause[:2].isupper():
        clause = clause[0].lower() + clause[1:]
    return clause


def _too_short(clause: str, lang: str) -> bool:
    if lang == "zh":
        return len(re.findall(r"[\u4e00-\u9fff]", clause)) < 6
    return len(re.findall(r"[A-Za-z]+", clause)) < 4


def _doc_name(doc: dict[str, Any], lang: str) -> str:
    title = monolingual((doc.get("title") or "").strip(), lang)
    if not title:
        title = (doc.get("path") or "").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return f"《{title}》" if lang == "zh" else f"the {title}" if not title.lower().startswith("the ") else title


def _pick(options: list[str], k: int, seed: str) -> list[int]:
    """k template indices, rotated by the fact, so every template is used about as often."""
    start = int(stable_hash(seed)[:8], 16) % len(options)
    return [(start + i) % len(options) for i in range(min(k, len(options)))]


class _Out:
    """Collects the drafts of one document with their shared fields."""

    def __init__(self, item: WorkItem, ctx: Context, doc: dict[str, Any]) -> None:
        self.item, self.ctx, self.doc = item, ctx, doc
        self.drafts: list[Draft] = []

    def add(self, q: str, a: str, lang: str, span: tuple[int, int], meta: dict[str, Any]) -> None:
        chunk_ids = self.ctx.chunks_over(self.doc["doc_id"], span[0], span[1])
        self.drafts.append(Draft(q, a, STRATEGY, VERSION, chunk_id=chunk_ids[0] if chunk_ids else "",
                                 doc_id=self.doc["doc_id"], source_chunk_ids=chunk_ids, span_start=span[0],
                                 span_end=span[1], lang=lang, format=self.item.format, meta=meta))


def _emit(out: _Out, fact: ff.Fact, fact_id: str, pairs: list[tuple[str, str, str]], heldout: int) -> None:
    """The fact's samples; pairs = [(lang, question, answer)], and `heldout` indexes the one held out."""
    for n, (lang, q, a) in enumerate(pairs):
        meta = {"fact_id": fact_id, "kind": fact.kind, "phrasing": n}
        short = _value(fact.short, lang) if fact.short else ""
        if short:
            aliases = ff.aliases_of(short) if short != fact.short else fact.aliases
            meta.update(short=short, aliases=aliases, heldout=n == heldout)
        out.add(q, a, lang, fact.span, meta)


def _field_pairs(fact: ff.Fact, langs: list[str], k: int) -> list[tuple[str, str, str]]:
    """Every language the field name can be put in; when it can be put in none of them, the first language
    with the name as the document writes it (a quoted field name, as qa_filter allows), so no fact is lost."""
    named = [(lang, _attr(fact.attribute, lang)) for lang in langs]
    if langs and all(attr is None for _, attr in named):
        named = [(langs[0], fact.attribute.strip())]
    pairs = []
    for lang, attr in named:
        subj = monolingual(fact.subject, lang) or fact.subject
        if attr is None:
            continue
        what = _what(fact.value)
        value = _value(fact.value, lang)
        for n, i in enumerate(_pick(QUESTIONS[lang], k, f"{fact.subject}|{fact.attribute}|{lang}")):
            q = QUESTIONS[lang][i].format(attr=attr, subj=subj, what=what)
            a = ANSWERS[lang][n % len(ANSWERS[lang])].format(attr=attr, subj=subj, value=value)
            pairs.append((lang, q, a))
    return pairs


def _sentence_pairs(fact: ff.Fact, doc: dict[str, Any], k: int) -> list[tuple[str, str, str]]:
    lang = fact.lang
    sent = fact.statement
    at = sent.find(fact.value)
    wh, cloze = _wh(sent, at, at + len(fact.value), lang)
    docname = _doc_name(doc, lang)
    topic = monolingual(fact.context, lang) or docname
    options = [t for t in SENTENCE_QUESTIONS[lang] if wh is not None or "{wh}" not in t]
    pairs = []
    for n, i in enumerate(_pick(options, k, sent)):
        q = options[i].format(topic=topic, doc=docname, wh=wh, cloze=cloze)
        a = SENTENCE_ANSWERS[lang][n % 2].format(sent=sent, doc=docname)
        pairs.append((lang, q[0].upper() + q[1:], a))
    return pairs


def _faq_pairs(fact: ff.Fact, doc: dict[str, Any], k: int) -> list[tuple[str, str, str]]:
    lang = fact.lang
    docname = _doc_name(doc, lang)
    rest = FAQ_QUESTIONS[lang][1:]  # the heading as written first, then rewordings around it
    return [(lang, t.format(q=fact.subject, doc=docname), fact.value)
            for t in [FAQ_QUESTIONS[lang][0], *(rest[i] for i in _pick(rest, k - 1, fact.subject))]]


def find_facts(doc: dict[str, Any], cfg: SynthConfig, doc_lang: str) -> tuple[list[ff.Fact], list[str]]:
    """(the document's facts in order, the languages of its record) with the recipe's `facts` options."""
    fields = record_fields(doc)
    if fields and cfg.facts.records:
        facts, langs = _record_facts(doc, fields, cfg, doc_lang)
    else:
        facts, langs = _prose_facts(doc, cfg.facts, doc_lang), []
    return facts[: cfg.facts.max_facts_per_doc], langs or [doc_lang]


def _record_facts(doc: dict[str, Any], fields: dict[str, Any], cfg: SynthConfig,
                  doc_lang: str) -> tuple[list[ff.Fact], list[str]]:
    """A record's field facts, and the languages its field names and values are in."""
    opts = cfg.facts
    title, tkey = record_title(doc, fields, cfg.record.title_field, cfg.record.title_fields)
    facts = ff.record_facts(doc, fields, title, tkey, opts.skip_fields, opts.max_short_chars, doc_lang)
    langs = sorted({("zh" if ff.has_cjk(str(k)) else "en") for k in fields if k != tkey}
                   | {f.lang for f in facts if f.lang})
    return facts, langs


def _prose_facts(doc: dict[str, Any], opts: Any, doc_lang: str) -> list[ff.Fact]:
    """Table rows, FAQ headings and value-bearing sentences, as the `facts` options ask."""
    facts: list[ff.Fact] = []
    if opts.tables:
        facts += ff.table_facts(doc, opts.max_short_chars, doc_lang)
    bodies = sections_with_body(doc, 8, 100_000, subsections=False)
    if opts.faq:
        facts += ff.faq_facts(doc, [(s, a, min(b, a + opts.max_answer_chars)) for s, a, b in bodies])
    if opts.sentences:
        spans = [(a, b, " > ".join(h for h in s["heading_path"] if h.strip())) for s, a, b in bodies]
        if not spans:
            spans = [(0, len(doc["text"]), "")]
        facts += ff.sentence_facts(doc, spans, opts.max_short_chars, opts.min_sentence_chars,
                                   opts.max_sentence_chars)
    return facts


def _pairs(fact: ff.Fact, doc: dict[str, Any], langs: list[str], k: int) -> list[tuple[str, str, str]]:
    """The fact's (lang, question, answer) phrasings."""
    if fact.kind in FIELD_KINDS:
        return _field_pairs(fact, [fact.lang] if fact.lang else langs, k)
    if fact.kind == "sentence":
        return _sentence_pairs(fact, doc, k)
    return _faq_pairs(fact, doc, k)


def _intro_lines(intro: dict[str, list[str]], fact: ff.Fact, langs: list[str]) -> None:
    """A field fact's line of the record's "Tell me about X" answer, in each language its field name has."""
    for lang in [fact.lang] if fact.lang else langs:
        attr = _attr(fact.attribute, lang)
        if attr is not None:
            intro.setdefault(lang, []).append(INTRO_LINE[lang].format(
                attr=attr, subj=monolingual(fact.subject, lang) or fact.subject, value=_value(fact.value, lang)))


def _introduce(out: _Out, facts: list[ff.Fact], intro: dict[str, list[str]]) -> None:
    """"Tell me about X" per language with at least two field lines, answered with every line."""
    title = facts[0].subject
    span = (min(f.span[0] for f in facts), max(f.span[1] for f in facts))
    for lang, lines in intro.items():
        if len(lines) >= 2:
            out.add(INTRODUCE[lang].format(subj=monolingual(title, lang) or title), "\n".join(lines), lang, span,
                    {"introduce": True})


class Facts(Template, DocumentStrategy):
    name = STRATEGY
    order = 110

    def expected(self, doc: dict[str, Any], cfg: SynthConfig) -> int:
        """An upper bound of the samples (for `infuse plan`): phrasings per fact and language."""
        facts, langs = find_facts(doc, cfg, "en")
        k = cfg.facts.phrasings
        return sum(k * (len(langs) if f.kind in FIELD_KINDS and not f.lang else 1) for f in facts)

    def prompt_versions(self, cfg: SynthConfig, lang: str) -> str:
        return VERSION  # templates in code, no prompt file

    def make(self, item: WorkItem, ctx: Context, track: Track) -> list[Draft]:
        doc = ctx.doc(item.doc_id)
        facts, langs = find_facts(doc, ctx.cfg, item.lang)
        if not facts:
            raise ItemFailure("no_facts", "no record field, table row, value-bearing sentence or FAQ heading")
        out = _Out(item, ctx, doc)
        intro: dict[str, list[str]] = {}
        for fact in facts:
            fact_id = stable_hash([doc["doc_id"], fact.kind, fact.subject, fact.attribute, fact.value])[:20]
            pairs = _pairs(fact, doc, langs, ctx.cfg.facts.phrasings)
            if fact.kind in FIELD_KINDS:
                _intro_lines(intro, fact, langs)
            if pairs:
                _emit(out, fact, fact_id, pairs, int(stable_hash([fact_id, "heldout"])[:8], 16) % len(pairs))
        if ctx.cfg.facts.introduce and doc_metadata(doc).get("fields"):
            _introduce(out, facts, intro)
        return out.drafts
