"""evaluate: metrics against hand-computed values, leakage that fails the step, made-up facts learned by sft
and not by base, and base+RAG and sft+RAG rows whose answers contain the retrieved reference chunk.

The flow tests run real flows on a tiny config-built model (tests/tiny_models.py); the RAG test's reader is a
real local HTTP server (tests/faulty_server.py with no faults) that answers from the first context it is given,
so what is checked is the retrieval (MiniLM over the chunks) and the prompt, not a model's reading skill.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from faulty_server import FaultyServer
from tiny_models import FACTS, fact_rows, make_tiny_model

from infuse.operators.evaluate.metrics import bootstrap_ci, contains, f1, rouge_l, score

REPO = Path(__file__).resolve().parent.parent
OFF = ("parse", "chunk", "clean", "filter", "dedup", "synthesize", "qa_filter", "mix")
UNTRAINED = [("What colour is the Brillo sea?", "The Brillo sea is deep orange."),
             ("Who built the Ostrel bridge?", "The Ostrel bridge was built by Maro Venn.")]


# ---- metrics --------------------------------------------------------------------------------------------------

def test_metrics_equal_hand_computed_values_in_english_and_chinese():
    # English, by words: 5 of 6 words shared (the x2, cat, on, mat); LCS "the cat on the mat" = 5
    assert f1("The cat sat on the mat.", "the cat is on the mat") == pytest.approx(5 / 6)
    assert rouge_l("The cat sat on the mat.", "the cat is on the mat") == pytest.approx(5 / 6)
    # order: all 3 words shared (P 1, R 3/4 -> F1 6/7), but the LCS is 2 ("the river"): P 2/3, R 2/4 -> 4/7
    assert f1("the violet river", "the river is violet") == pytest.approx(6 / 7)
    assert rouge_l("the violet river", "the river is violet") == pytest.approx(4 / 7)
    # Chinese, by characters: the same 8 characters, LCS 中国的首都 = 5 of 8
    assert f1("北京是中国的首都", "中国的首都是北京") == pytest.approx(1.0)
    assert rouge_l("北京是中国的首都。", "中国的首都是北京") == pytest.approx(5 / 8)
    # 3 of 4 answer characters (七月亮) in a 7-character reference: P 3/4, R 3/7 -> F1 18/33
    assert f1("七个月亮", "佩克萨有七月亮") == pytest.approx(18 / 33)
    # contains: a whole word sequence (not a prefix of a word), case and punctuation folded, aliases too
    assert contains("It is Bright Violet, I think.", ["bright violet"])
    assert not contains("It is bright violets", ["bright violet"])
    assert contains("答案是七个。", ["7个", "七个"]) and not contains("", ["七个"])
    s = score("Seven moons.", "Pexa has seven moons.", aliases=["seven moons"])
    assert s == {"strict": 1.0, "f1": pytest.approx(1.0), "rouge_l": pytest.approx(1.0), "contains": 1.0}
    mean, lo, hi = bootstrap_ci([0, 1, 1, 1], n=500, seed=0)
    assert mean == 0.75 and 0 <= lo < 0.75 < hi <= 1.0
    assert bootstrap_ci([1, 1, 1]) == (1.0, 1.0, 1.0)


# ---- flows on a tiny model ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "base")


def eval_rows(pairs: list[tuple[str, str]], prefix: str, split: str = "eval", kind: str = "domain",
              system: str | None = "Answer briefly.") -> list[dict]:
    rows = []
    for i, (q, a) in enumerate(pairs):
        msgs = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": q}, {"role": "assistant", "content": a}]
        rows.append({"sample_id": f"{prefix}-{i}", "messages": msgs, "source": "domain" if kind != "general" else "gen",
                     "kind": kind, "doc_id": f"{prefix}-doc-{i}" if kind != "general" else "",
                     "chunk_id": f"{prefix}-chunk-{i}", "span_start": None, "span_end": None, "strategy": "qa",
                     "lang": "en", "split": split})
    return rows


def run_eval(tmp: Path, tiny: Path, data: dict, evaluate: dict, sft: bool = False):
    from infuse.flows.pipeline import run_recipe

    (tmp / "data.json").write_text(json.dumps(data), encoding="utf-8")
    (tmp / "docs").mkdir(exist_ok=True)
    steps = {**{s: {"enabled": False} for s in OFF}, "evalrows": {"path": str(tmp / "data.json")},
             "evaluate": {"enabled": True, "paraphrases": 0, "bootstrap": 200, "max_new_tokens": 24,
                          "llm": {"backend": "transformers", "device": "cpu"}, **evaluate}}
    if sft:
        steps["sft"] = {"enabled": True, "method": "lora", "max_steps": 30, "batch_size": 1, "max_length": 128,
                        "learning_rate": 1e-2, "lr_scheduler": "constant", "warmup_ratio": 0.0,
                        "lora": {"r": 16, "alpha": 32, "dropout": 0.0}}
    recipe = {"name": "eval", "input": str(tmp / "docs"), "storage": str(tmp / "runs"),
              "plugins": [str(REPO / "tests" / "eval_steps.py")], "model": {"path": str(tiny)}, "steps": steps}
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return run_recipe(str(path))


def cell(stats: dict, model: str, group: str) -> dict:
    return next(r for r in stats["table"] if r["model"] == model and r["group"] == group)


@pytest.fixture(scope="module")
def facts_run(tmp_path_factory, tiny):
    """sft on four made-up facts; evaluate asks them (eval split, knowingly leaked: leakage warn), two facts never
    trained (the user's own file, with an alias) and one general row (forgetting)."""
    from infuse.flows.pipeline import run_recipe  # noqa: F401 (the server fixture must be up first)

    tmp = tmp_path_factory.mktemp("facts")
    user = tmp / "mine.jsonl"
    user.write_text("\n".join(json.dumps({"question": q, "answer": a, "doc": "atlas.md", "aliases": [a.lower()]})
                               for q, a in UNTRAINED), encoding="utf-8")  # a bad line: the run refuses the file
    rows = fact_rows(2, system="Answer briefly.") + eval_rows(FACTS, "known") + eval_rows(
        [("Hello, how can I help you today?", "You are a helpful assistant.")], "gen", kind="general")
    res = run_eval(tmp, tiny, {"rows": rows}, {"user_questions": str(user), "leakage": {"action": "warn"},
                                                 "rag": {"enabled": False}}, sft=True)
    return tmp, res


@pytest.mark.usefixtures("prefect_server")
def test_sft_beats_base_on_trained_facts_and_ties_on_untrained_ones(facts_run):
    tmp, res = facts_run
    ev = res["evaluate"]
    stats = ev["stats"]
    assert stats["models"] == ["base", "sft"] and stats["groups"] == {"domain": 4, "paraphrase": 0, "user": 2,
                                                                       "general": 1}
    assert cell(stats, "sft", "domain")["contains"] == 1.0 and cell(stats, "base", "domain")["contains"] == 0.0
    assert cell(stats, "sft", "domain")["f1"] > cell(stats, "base", "domain")["f1"] + 0.5
    assert cell(stats, "sft", "user")["contains"] == cell(stats, "base", "user")["contains"] == 0.0
    assert stats["closed_book"]["sft"]["contains"]["tuned"] == pytest.approx(4 / 6, abs=1e-3)  # domain + user pooled
    forget = stats["forgetting"][0]
    assert forget["model"] == "sft" and forget["loss_base"] > 0 and forget["loss_delta"] == pytest.approx(
        forget["loss"] - forget["loss_base"], abs=1e-3)
    scores = pq.read_table(ev["outputs"]["scores"]["path"]).to_pylist()
    assert len(scores) == 2 * 7
    by = {(s["model"], s["question"]): s for s in scores}
    for q, a in FACTS:
        assert a in by[("sft", q)]["answer"] and by[("base", q)]["contains"] == 0.0
    questions = pq.read_table(ev["outputs"]["questions"]["path"]).to_pylist()
    assert {q["item_id"] for q in questions if q["leaked"]} == {f"domain:known-{i}" for i in range(4)}
    report = Path(ev["report"]["path"])
    assert (report / "accuracy.png").read_bytes()[:4] == b"\x89PNG"
    md = (report / "report.md").read_text(encoding="utf-8")
    assert "atlas.md" in md  # per-document accuracy names the user's doc
    assert pq.read_table(ev["rejects"]["path"]).num_rows == 0


def test_a_bad_line_of_the_user_questions_is_a_reject_of_the_reader(tmp_path):
    """What evaluate's reader makes of bad lines (validate and the flow refuse such a file before a run; a file
    edited between the check and the read still loses only its bad lines)."""
    from infuse.operators.evaluate.questions import read_user_questions

    user = tmp_path / "mine.jsonl"
    user.write_text("\n".join([json.dumps({"question": "Q?", "answer": "A"}), "{not json",
                               json.dumps({"question": "no answer"})]), encoding="utf-8")
    items, rejects = read_user_questions(user)
    assert [i.question for i in items] == ["Q?"]
    assert sorted(r.reason for r in rejects) == ["malformed_json", "missing_field"]


@pytest.mark.usefixtures("prefect_server")
def test_an_eval_question_planted_in_the_train_split_fails_the_step_naming_it(tmp_path, tiny):
    from infuse.flows.pipeline import StepFailed

    planted = "How many moons does Pexa have?"
    train = fact_rows(1) + eval_rows([("Tell me, how many moons does Pexa have?", "Seven.")], "dup", split="train")
    evals = eval_rows([(planted, "Pexa has seven moons."), ("What is the capital of Ruritania?", "Strelsau.")], "ev")
    with pytest.raises(StepFailed) as err:
        run_eval(tmp_path, tiny, {"rows": train + evals}, {"rag": {"enabled": False}})
    msg = str(err.value)
    assert "evaluate" in msg and "eval question(s) appear in the training data" in msg
    assert "domain:ev-0" in msg and planted in msg and "Ruritania" not in msg


@pytest.fixture(scope="module")
def rag_run(tmp_path_factory, tiny):
    """base and sft, closed-book and with RAG, through the openai backend: a reader server that answers with the
    first context it gets, and without one echoes a question that holds its own answer (or does not know)."""
    tmp = tmp_path_factory.mktemp("rag")
    chunks = [{"chunk_id": "c-moons", "doc_id": "pexa.md", "text": "Pexa is a cold planet. Pexa has seven moons."},
              {"chunk_id": "c-river", "doc_id": "zorblat.md", "text": "The Zorblat river is bright violet all year."},
              {"chunk_id": "c-cake", "doc_id": "bake.md", "text": "Bake the lemon cake for forty minutes at 180 C."},
              {"chunk_id": "c-db", "doc_id": "db.md", "text": "LotusDB writes each key to a log-structured tree."}]
    pairs = [("How many moons does Pexa have?", "Pexa has seven moons."),
             ("What colour is the Zorblat river?", "bright violet"),
             ("Is the Zorblat river bright violet or dull grey?", "bright violet")]
    rows = eval_rows([("Who founded Quellmoor?", "Anika Trell.")], "t", split="train") + eval_rows(pairs, "rag")

    def reader(body: dict) -> str:
        last = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
        m = re.search(r"<Context id=1>\n(.*?)\n</Context>", last, re.S)
        if m:
            return m.group(1)
        return f"{last} {last}" if "dull grey" in last else "I do not know."

    with FaultyServer(fail_rate=0.0, content_fn=reader) as srv:
        res = run_eval(tmp, tiny, {"rows": rows, "chunks": chunks},
                       {"loss": False, "rag": {"k": 2}, "llm": {"backend": "openai", "base_url": srv.base_url,
                                                                "model": "reader", "max_retries": 0}}, sft=True)
    return tmp, res


@pytest.mark.usefixtures("prefect_server")
def test_base_and_tuned_with_rag_answers_contain_the_reference_chunk(rag_run):
    _, res = rag_run
    ev = res["evaluate"]
    stats = ev["stats"]
    assert stats["models"] == ["base", "sft", "base+rag", "sft+rag"]
    for m in ("base+rag", "sft+rag"):
        assert cell(stats, m, "domain")["strict"] == cell(stats, m, "domain")["contains"] == 1.0
    scores = pq.read_table(ev["outputs"]["scores"]["path"]).to_pylist()
    for m in ("base+rag", "sft+rag"):
        rag = {s["question"]: s for s in scores if s["model"] == m}
        assert rag["How many moons does Pexa have?"]["rag_chunks"][0] == "c-moons"
        assert rag["What colour is the Zorblat river?"]["rag_chunks"][0] == "c-river"
        assert "seven moons" in rag["How many moons does Pexa have?"]["answer"]
    head = stats["headline"]
    assert {k: head[k] for k in ("metric", "model", "closed_book", "base", "tuned+rag", "base+rag", "of_tuned_rag",
                                 "gain_points")} == {"metric": "strict", "model": "sft", "closed_book": 0.0,
                                                     "base": 0.0, "tuned+rag": 1.0, "base+rag": 1.0,
                                                     "of_tuned_rag": 0.0, "gain_points": 0.0}
    assert stats["closed_book"]["sft"]["contains"]["tuned+rag"] == 1.0
    md = (Path(ev["report"]["path"]) / "report.md").read_text(encoding="utf-8")
    assert "closed-book is **0% of sft+RAG**" in md


@pytest.mark.usefixtures("prefect_server")
def test_an_echoed_question_is_flagged_and_scores_strict_0_even_when_it_contains_the_reference(rag_run):
    _, res = rag_run
    ev = res["evaluate"]
    stats = ev["stats"]
    scores = pq.read_table(ev["outputs"]["scores"]["path"]).to_pylist()
    echo = [s for s in scores if s["question"].endswith("dull grey?") and s["model"] in ("base", "sft")]
    assert [(s["flag"], s["contains"], s["strict"]) for s in echo] == [("echo", 1.0, 0.0)] * 2
    assert {s["flag"] for s in scores if not s["question"].endswith("dull grey?") or s["model"].endswith("+rag")} \
        == {None}
    assert stats["flags"]["base"] == {"empty": 0, "echo": 1, "repeat": 0} == stats["flags"]["sft"]
    assert stats["flags"]["sft+rag"] == {"empty": 0, "echo": 0, "repeat": 0}
    assert cell(stats, "base", "domain")["flagged"] == 1
    assert cell(stats, "base", "domain")["contains"] == pytest.approx(1 / 3, abs=1e-3)
    assert cell(stats, "base", "domain")["strict"] == 0.0


@pytest.mark.usefixtures("prefect_server")
def test_the_report_counts_per_fact_and_charts_strict_accuracy(rag_run):
    _, res = rag_run
    report = Path(res["evaluate"]["report"]["path"])
    md = (report / "report.md").read_text(encoding="utf-8")
    assert "### Per fact" in md and "Known: base 0/3, sft 0/3, base+rag 3/3, sft+rag 3/3." in md
    assert "| Is the Zorblat river bright violet or dull grey? | bright violet |  | 0 | 0 | 1 | 1 |" in md
    for name in ("accuracy", "contains", "f1"):
        assert (report / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.usefixtures("prefect_server")
def test_compare_prints_both_runs_side_by_side_with_deltas(facts_run, rag_run):
    from typer.testing import CliRunner

    from infuse.flows.cli import app

    facts, rag = facts_run[0] / "runs", rag_run[0] / "runs"
    manifest = next(p for p in (rag / "manifests").glob("*.json") if p.name != "latest.json")
    out = CliRunner().invoke(app, ["compare", str(facts), str(manifest), "-m", "strict"])
    assert out.exit_code == 0, out.output
    lines = {tuple(line.split()[:3]): line for line in out.output.splitlines() if line.strip()}
    base_domain = lines[("base", "domain", "strict")]
    assert base_domain.rstrip().endswith("+0.000")  # base scores 0 in both runs
    assert lines[("sft", "user", "strict")].rstrip().endswith("-")  # user questions only in A
    assert lines[("base+rag", "domain", "strict")].rstrip().endswith("-")  # RAG only in B
    bad = CliRunner().invoke(app, ["compare", str(facts), str(facts_run[0] / "nowhere")])
    assert bad.exit_code == 2 and "no such runs dir" in bad.output


def test_paraphrases_keep_their_item_and_reference_and_the_judge_grades_or_leaves_ungraded():
    """Through the openai backend against a real local server: variants equal to the question are dropped, a
    reply that is not JSON fails only its item; the judge's grade is parsed, a malformed one is None and a
    reject that says why."""
    from infuse.operators.evaluate.judge import judge
    from infuse.operators.evaluate.questions import Item, paraphrase
    from infuse.operators.llm import make_backend

    def content(body: dict) -> str:
        last = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
        if "Answer to grade" in last:
            return '{"score": 4, "reason": "main fact"}' if "violet" in last else "no idea"
        if "Zorblat" in last:
            return json.dumps([{"question": "What colour is the Zorblat river?", "answer": "x"},
                               {"question": "Which colour does the Zorblat river have?", "answer": "y"},
                               {"question": "Tell me the hue of the Zorblat river.", "answer": "z"}])
        return "I cannot do that."

    items = [Item(f"domain:{sid}", "domain", q, a, [{"role": "user", "content": q}], sample_id=sid, doc_id="d")
             for sid, (q, a) in zip(("a", "b"), FACTS[:2])]
    with FaultyServer(fail_rate=0.0, content_fn=content) as srv:
        backend = make_backend({"backend": "openai", "base_url": srv.base_url, "model": "m", "max_retries": 0})
        out, rejects = paraphrase(items, backend, k=1)
        grades, ungraded = judge([{"question": q, "reference": a, "answer": ans, "lang": "en", "model": "sft",
                                   "item_id": sid} for sid, q, a, ans in
                                  [("domain:a", *FACTS[0], "bright violet"), ("domain:b", *FACTS[1], "nobody")]],
                                 backend)
    assert [(p.question, p.reference, p.parent_id, p.doc_id) for p in out] == [
        ("Which colour does the Zorblat river have?", FACTS[0][1], "domain:a", "d")]
    assert [(r.id, r.reason) for r in rejects] == [("a", "paraphrase_same"), ("b", "paraphrase_malformed")]
    assert grades == [4, None]
    assert [(r.id, r.reason, r.detail) for r in ungraded] == [
        ("domain:b", "judge_unreadable", {"model": "sft", "item_id": "domain:b", "raw": "no idea"})]


@pytest.mark.usefixtures("prefect_server")
def test_answers_are_kept_by_model_and_prompt_so_new_questions_cost_only_their_own(tmp_path, tiny):
    """A second run with one more question (so another step key) generates only that question's answers; the
    kept answers are the ones the first run gave."""
    first_rows = eval_rows(FACTS[:2], "known")
    one = run_eval(tmp_path, tiny, {"rows": first_rows}, {"rag": {"enabled": False}, "loss": False})["evaluate"]
    assert one["stats"]["answer_memo"] == {"memo_hits": 0, "memo_misses": 2}
    two = run_eval(tmp_path, tiny, {"rows": first_rows + eval_rows(FACTS[2:3], "more")},
                   {"rag": {"enabled": False}, "loss": False})["evaluate"]
    assert two["key"] != one["key"]
    assert two["stats"]["answer_memo"] == {"memo_hits": 2, "memo_misses": 1}
    before = {r["item_id"]: r["answer"] for r in pq.read_table(one["outputs"]["scores"]["path"]).to_pylist()}
    after = {r["item_id"]: r["answer"] for r in pq.read_table(two["outputs"]["scores"]["path"]).to_pylist()}
    assert len(after) == 3 and all(after[k] == v for k, v in before.items())
