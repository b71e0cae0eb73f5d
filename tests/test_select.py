"""Selection: IFD checked by hand on tiny models, batch invariance, k-center and facility location on toy points,
the IFD cut and budgets, MoDS stages against a real local LLM server, baselines."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from faulty_server import FaultyServer
from tiny_lm import tiny_lm

from infuse.operators.select import METHODS, Hooks, SelectConfig, run, select_rows
from infuse.operators.select.ifd import HFLossScorer, IFDScores, compute_ifd, start_token


def conv(q: str, a: str, system: str | None = None) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": system}] if system else []
    return msgs + [{"role": "user", "content": q}, {"role": "assistant", "content": a}]


CONVS = [
    conv("What is LotusDB?", "LotusDB is an embedded key value database."),
    conv("How do I open a database?", "Use lotus_open with a path and options.", system="Answer briefly."),
    conv("What does compaction do?", "Compaction merges segment files and drops deleted keys. 压缩会合并段文件。"),
    conv("Where are writes kept?", "The write ahead log keeps every write until it is flushed to a segment file "
                                   "on disk, and the log is replayed after a crash."),
    conv("Is it fast?", "Yes."),
    conv("What is a segment?", "A segment file on disk holds sorted keys."),
]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-lms")
    return {arch: str(tiny_lm(root / arch, arch)) for arch in ("llama", "gemma3")}


def direct_loss(model, ids: list[int], n_targets: int) -> float:
    """Mean CE of the last n_targets tokens of `ids`, from the model's own full logits."""
    import torch

    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    logp = torch.log_softmax(logits, dim=-1)
    pos = range(len(ids) - n_targets - 1, len(ids) - 1)
    return float(-sum(logp[p, ids[p + 1]] for p in pos) / n_targets)


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_ifd_matches_a_hand_computed_case(models, arch):
    """s(A|Q) and s(A) by hand from the model's full logits; the same answer ids in both passes."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = models[arch]
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    c = CONVS[1]
    prompt_text = tok.apply_chat_template(c[:-1], add_generation_prompt=True, tokenize=False)
    assert prompt_text.endswith("<start_of_turn>model\n") and "Answer briefly." in prompt_text
    prompt = tok(prompt_text, add_special_tokens=False)["input_ids"]
    answer = tok(c[-1]["content"], add_special_tokens=False)["input_ids"]
    s_aq = direct_loss(model, prompt + answer, len(answer))
    s_a = direct_loss(model, [tok.bos_token_id] + answer, len(answer))

    scorer, tok2 = HFLossScorer.load(path)
    assert scorer.gather, "the gathered LM head reproduces the model's logits (softcap included for gemma3)"
    got = compute_ifd(scorer, tok2, tok2.chat_template, [c])
    assert got.s_a_given_q[0] == pytest.approx(s_aq, rel=1e-5)
    assert got.s_a[0] == pytest.approx(s_a, rel=1e-5)
    assert got.answer_tokens[0] == len(answer) and got.prompt_tokens[0] == len(prompt)
    assert got.loss_ratio[0] == pytest.approx(s_aq / s_a, rel=1e-5)
    assert got.ppl_ratio[0] == pytest.approx(math.exp(s_aq) / math.exp(s_a), rel=1e-5)
    assert start_token(tok2) == tok.bos_token_id


def test_ifd_does_not_depend_on_batching_or_padding_side(models):
    path = models["gemma3"]
    results = []
    for kw in ({"max_batch": 1}, {"batch_tokens": 1 << 20, "max_batch": 64}, {"batch_tokens": 96, "max_batch": 3},
               {"max_batch": 64, "padding_side": "left"}):
        scorer, tok = HFLossScorer.load(path, **kw)
        results.append(compute_ifd(scorer, tok, tok.chat_template, CONVS))
    base = results[0]
    assert np.isfinite(base.loss_ratio).all()
    for r in results[1:]:
        np.testing.assert_allclose(r.s_a_given_q, base.s_a_given_q, rtol=1e-5)
        np.testing.assert_allclose(r.s_a, base.s_a, rtol=1e-5)


def test_ifd_rows_that_cannot_be_scored_say_why(models):
    scorer, tok = HFLossScorer.load(models["llama"])
    bad = [[{"role": "user", "content": "no answer"}], conv("Empty answer?", "   "), "not a list"]
    got = compute_ifd(scorer, tok, tok.chat_template, bad + CONVS[:1])
    assert np.isnan(got.loss_ratio[:3]).all() and np.isfinite(got.loss_ratio[3])
    assert "ending with the assistant" in got.errors[0] and "no tokens" in got.errors[1] and got.errors[3] is None


def test_k_center_known_answer_and_seeded():
    from infuse.operators.select.kcenter import k_center_greedy

    x = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [20.0]])
    assert k_center_greedy(x, 2, initial=[0]) == [5, 3]  # farthest from 0 is 20, then 10 (10 from both)
    assert k_center_greedy(x, 3, initial=[0]) == [5, 3, 2]  # then 2 (2 from 0; 1 and 11 are 1 away)
    first = int(np.random.default_rng(7).integers(6))
    picks = k_center_greedy(x, 6, seed=7)
    assert picks[0] == first and sorted(picks) == list(range(6))
    assert k_center_greedy(x, 4, seed=7) == k_center_greedy(x, 4, seed=7)


def test_facility_location_picks_each_cluster_medoid():
    from infuse.operators.select.facility import facility_location

    # two opposite clusters on the unit circle: the big one's centre first, then the small one's
    angles = np.array([-0.1, -0.05, 0.0, 0.05, 0.1, np.pi - 0.1, np.pi, np.pi + 0.1])
    x = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    assert facility_location(x, 2) == [2, 6]
    assert facility_location(x, 2, block=3) == [2, 6]  # gains summed block by block: same answer
    assert sorted(facility_location(x, 8)) == list(range(8))


def rows_for(convs, strategies=None, docs=None):
    return [{"sample_id": f"s{i}", "messages": c, "strategy": (strategies or ["qa"] * len(convs))[i],
             "doc_id": (docs or ["d0"] * len(convs))[i], "lang": "en"} for i, c in enumerate(convs)]


def given_ifd(values):
    """An IFD function that returns these loss ratios (s(A) = 1), for the selection logic alone."""
    def ifd(conversations):
        n = len(conversations)
        assert n == len(values)
        return IFDScores(np.array(values, dtype=float), np.ones(n), np.full(n, 5), np.full(n, 9), [None] * n)
    return ifd


def test_ifd_cut_then_top_percent_with_exempt_rows_and_reasons():
    convs = [conv(f"q{i}", f"answer number {i}") for i in range(8)]
    rows = rows_for(convs, ["qa"] * 6 + ["section_template", "identity+paraphrase"])
    cfg = SelectConfig.model_validate({"method": "ifd", "budget": {"percent": 50}})
    sel = select_rows(rows, cfg, ifd=given_ifd([0.9, 1.2, 0.5, 0.7, 1.0, 0.3]))
    reasons = dict(zip(range(8), sel.reasons))
    assert reasons[1] == reasons[4] == "ifd>=1", "IFD >= 1 is dropped, 1.0 included"
    # 4 valid (0.9, 0.5, 0.7, 0.3): 50% keeps 0.9 and 0.7
    assert [i for i in range(6) if sel.selected[i]] == [0, 3]
    assert reasons[2] == reasons[5] == "below top 50% by ifd"
    assert sel.selected[6] and sel.selected[7] and sel.exempt[6:].all() and sel.by[6] == "exempt"
    assert np.isnan(sel.scores["score_ifd"][6]), "exempt rows are not scored"
    rejects = sel.rejects([r["sample_id"] for r in rows])
    assert {r.id for r in rejects} == {"s1", "s2", "s4", "s5"}
    assert all(r.detail.get("score_ifd") is not None for r in rejects)
    assert sel.cut["keep"] == pytest.approx(0.7) and sel.cut["max"] == 1.0


def test_budget_n_per_source_and_ppl_variant_ranks_differently():
    # row 0: loss ratio 0.5, ppl ratio exp(-0.5); row 1: 0.75, exp(-1): the two variants disagree
    s_aq = np.array([0.5, 3.0, 2.0, 0.1])
    s_a = np.array([1.0, 4.0, 2.5, 0.2])
    scores = IFDScores(s_aq, s_a, np.full(4, 5), np.full(4, 9), [None] * 4)
    assert np.argmax(scores.loss_ratio[:2]) == 1 and np.argmax(scores.ppl_ratio[:2]) == 0
    rows = rows_for([conv(f"q{i}", f"a{i}") for i in range(4)], docs=["d0", "d0", "d1", "d1"])

    def ifd(c):
        return scores

    by_loss = select_rows(rows, SelectConfig.model_validate({"budget": {"n": 1, "per": "doc_id"}}), ifd=ifd)
    by_ppl = select_rows(rows, SelectConfig.model_validate({"budget": {"n": 1, "per": "doc_id"},
                                                            "ifd": {"variant": "ppl_ratio"}}), ifd=ifd)
    assert by_loss.selected.tolist() == [False, True, True, False]  # one per document, by s(A|Q)/s(A)
    assert by_ppl.selected.tolist() == [True, False, False, True]  # by exp(s(A|Q) - s(A))
    assert by_ppl.reasons[1] == "below top 1 by ifd_ppl"


def test_superfilter_with_diversity_picks_from_the_ifd_pool():
    convs = [conv("Open a database", "a"), conv("Open the database", "b"), conv("Compaction of segments", "c"),
             conv("Open a database file", "d"), conv("Weather in Paris", "e"), conv("Unrelated", "f")]
    rows = rows_for(convs)
    cfg = SelectConfig.model_validate({"method": "superfilter", "budget": {"n": 2},
                                       "diversity": {"method": "kcenter", "pool": 2}})
    sel = select_rows(rows, cfg, ifd=given_ifd([0.9, 0.8, 0.1, 0.85, 0.2, 0.3]))
    # pool = top 4 by IFD: 0, 3, 1 (open ...) and 5; k-center picks 2 of them
    assert sel.reasons[2] == sel.reasons[4] == "below top 4 by ifd"
    assert sel.selected.sum() == 2
    assert {sel.reasons[i] for i in (0, 1, 3, 5) if not sel.selected[i]} == {"not chosen by k-center"}
    assert all(b == "ifd+k-center" for b in (sel.by[i] for i in range(6) if sel.selected[i]))


def judge_content(body):
    """The quality judge: scores by a tag in the answer; necessity: reproduces the reference for 'known'."""
    user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
    if "Rate the answer" in json.dumps(body["messages"]):
        if "[bad]" in user:
            return '{"score": 2, "reason": "poor"}'
        if "[garbled]" in user:
            return "I cannot rate this."
        return '{"score": 8, "reason": "fine"}'
    if "known" in user:
        return "The write ahead log keeps every write until it is flushed to disk."
    return "Bananas are yellow."


def test_mods_stages_compose_and_every_dropped_row_has_its_reason():
    from infuse.operators.llm import make_backend
    from infuse.operators.select.mods import necessity_scores
    from infuse.operators.select.quality import judge_scores

    ref = "The write ahead log keeps every write until it is flushed to disk."
    convs = ([conv(f"Open the database, variant {i}", ref) for i in range(3)]
             + [conv("How does compaction work?", ref + " [bad]"), conv("What is a segment?", ref + " [garbled]")]
             + [conv("Where are writes known to be kept?", ref), conv("Where are known writes logged?", ref)]
             + [conv("What colour is the sky?", ref), conv("Who wrote the manual?", ref)])
    rows = rows_for(convs)
    with FaultyServer(fail_rate=0.0, content_fn=judge_content) as srv:
        llm = {"backend": "openai", "base_url": srv.base_url, "model": "judge", "max_retries": 0, "timeout_s": 10}
        cfg = SelectConfig.model_validate({
            "method": "mods", "budget": {"n": 2},
            "mods": {"quality": {"kind": "judge", "threshold": "5", "llm": llm},  # a string threshold is cast
                     "necessity": {"model": "tuned", "threshold": 0.5, "llm": llm}}})
        assert isinstance(cfg.mods.quality.threshold, float)
        backend = make_backend(llm)
        seeds_seen = []

        def necessity(seed_rows, conversations):
            seeds_seen.append([r["sample_id"] for r in seed_rows])
            return necessity_scores(backend, conversations, 64, "rougel")

        sel = select_rows(rows, cfg, quality=lambda c, langs: judge_scores(backend, c, langs), necessity=necessity)
    reasons = sel.reasons
    assert reasons[3] == "judge < threshold" and "2 < 5" in sel.messages[3]
    assert reasons[4] == "judge failed" and "no score" in sel.messages[4]
    seed = [i for i in range(9) if sel.by[i] == "seed"]
    assert len(seed) == 2 and [sorted(s) for s in seeds_seen] == [[f"s{i}" for i in seed]], "trained on the seed"
    rest = [i for i in (0, 1, 2, 5, 6, 7, 8) if i not in seed]
    for i in rest:
        known = "known" in convs[i][0]["content"]
        if known:
            assert reasons[i] == "answered well by the seed model" and not sel.selected[i]
        else:
            assert sel.by[i] == "necessity" and sel.selected[i], "badly answered rows are added"
    assert all(sel.selected[i] or reasons[i] for i in range(9))
    assert np.isfinite(sel.scores["score_judge"][[0, 1, 2, 3]]).all()

    # necessity off: the rest are dropped as not chosen by k-center; max_added caps the additions
    cfg_off = cfg.model_copy(update={"mods": cfg.mods.model_copy(
        update={"necessity": cfg.mods.necessity.model_copy(update={"enabled": False})})})
    with FaultyServer(fail_rate=0.0, content_fn=judge_content) as srv:
        backend = make_backend({**llm, "base_url": srv.base_url})
        off = select_rows(rows, cfg_off, quality=lambda c, langs: judge_scores(backend, c, langs))
    assert sorted(i for i in range(9) if off.selected[i]) == seed, "k-center is seeded: the same seed set"
    assert {off.reasons[i] for i in rest} == {"not chosen by k-center"}


def test_reward_model_scores_match_the_model(tmp_path):
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    from infuse.operators.select.quality import reward_scores
    from tiny_lm import tiny_tokenizer

    tok = tiny_tokenizer()
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, num_labels=1, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    LlamaForSequenceClassification(config).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    got, errors = reward_scores(str(tmp_path), CONVS[:3] + [[{"role": "user", "content": "x"}]], batch_size=2)
    assert np.isnan(got[3]) and errors[3] and np.isfinite(got[:3]).all()
    model = LlamaForSequenceClassification.from_pretrained(tmp_path).eval()
    tok = AutoTokenizer.from_pretrained(tmp_path)
    text = tok.apply_chat_template(CONVS[2], tokenize=False)
    with torch.no_grad():
        direct = model(**tok(text, add_special_tokens=False, return_tensors="pt")).logits[0, 0].item()
    assert got[2] == pytest.approx(direct, rel=1e-4, abs=1e-5), "padding in a batch does not change the score"


def test_baselines_longest_deita_random():
    convs = [conv("Open a database", "one two three four"), conv("Open a database", "one two"),
             conv("Compaction", "one two three four five six"), conv("Weather", "one")]
    rows = rows_for(convs)
    longest = select_rows(rows, SelectConfig.model_validate({"method": "longest", "budget": {"n": 2}}))
    assert longest.selected.tolist() == [True, False, True, False]
    assert longest.reasons[1] == "below top 2 by answer length"
    deita = select_rows(rows, SelectConfig.model_validate({"method": "diversity", "budget": {"n": 3},
                                                           "deita": {"threshold": 0.95}}))
    # by length: 2, 0, then 1 (the same question as 0: redundant), then 3
    assert deita.selected.tolist() == [True, False, True, True]
    assert deita.reasons[1] == "cos>=0.95 to a kept row"
    deita2 = select_rows(rows, SelectConfig.model_validate({"method": "diversity", "budget": {"n": 1}}))
    assert deita2.reasons[0] == "beyond top 1 by longest"
    r1 = select_rows(rows, SelectConfig.model_validate({"method": "random", "budget": {"percent": 50}, "seed": 3}))
    r2 = select_rows(rows, SelectConfig.model_validate({"method": "random", "budget": {"percent": 50}, "seed": 3}))
    assert r1.selected.tolist() == r2.selected.tolist() and r1.selected.sum() == 2
    assert {r for r in r1.reasons if r} == {"not drawn at random"}


def test_config_errors_are_clear():
    with pytest.raises(ValueError, match="percent or n"):
        SelectConfig.model_validate({"budget": {"percent": 10, "n": 5}})
    with pytest.raises(ValueError):
        SelectConfig.model_validate({"method": "cherry"})


def fake_embed(conversations):
    """Unit vectors seeded by the question number ("q3" -> 3): far apart, the same on every call."""
    x = np.stack([np.random.default_rng(int(c[0]["content"][1:])).normal(size=16) for c in conversations])
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("name", METHODS)
def test_every_method_decides_every_candidate_within_the_budget(name):
    from infuse.operators.select.methods import REGISTRY

    assert set(REGISTRY) == set(METHODS), "every recipe method has its class, and no class lacks its name"
    rows = rows_for([conv(f"q{i}", "word " * (i + 1)) for i in range(8)], ["qa"] * 7 + ["identity"])
    cfg = SelectConfig.model_validate({"method": name, "budget": {"n": 3}, "ifd": {"max_ifd": None},
                                       "mods": {"necessity": {"enabled": False}}})
    sel = select_rows(rows, cfg, ifd=given_ifd([0.1, 0.7, 0.3, 0.9, 0.5, 0.2, 0.8]), embed=fake_embed,
                      quality=lambda c, langs: (np.full(len(c), 9.0), [None] * len(c)))
    assert sel.exempt.tolist() == [False] * 7 + [True] and sel.by[7] == "exempt"
    assert int(sel.selected[:7].sum()) == 3 and sel.stats["kept"] == 4
    assert all(bool(sel.selected[i]) != bool(sel.reasons[i]) for i in range(8)), "kept, or dropped with a reason"
    assert all(sel.messages[i] for i in range(7) if not sel.selected[i])


def test_a_method_missing_its_model_says_so_and_no_candidates_need_none():
    rows = rows_for([conv("q0", "a")])
    with pytest.raises(ValueError, match="select method superfilter needs an IFD scorer"):
        select_rows(rows, SelectConfig.model_validate({"method": "superfilter"}))
    with pytest.raises(ValueError, match="mods needs a quality scorer"):
        select_rows(rows, SelectConfig.model_validate({"method": "mods"}))
    exempt = select_rows(rows_for([conv("q0", "a")], ["identity"]), SelectConfig.model_validate({"method": "mods"}))
    assert exempt.selected.tolist() == [True] and exempt.stats["candidates"] == 0


def test_the_scorer_renders_prompts_with_the_training_template(models):
    """One template module: select scores a prompt as training will render it (operators/train/templates)."""
    from transformers import AutoConfig, AutoTokenizer

    from infuse.operators.common.models import GEMMA_CHAT_TEMPLATE
    from infuse.operators.select.scorers import scorer_template
    from infuse.operators.train import templates as T

    path = models["gemma3"]
    tok = AutoTokenizer.from_pretrained(path)
    model_type = AutoConfig.from_pretrained(path).model_type
    own = tok.chat_template  # marker-less and unknown to trl: training refuses it, but it renders prompts
    with pytest.raises(T.TemplateError):
        T.resolve(tok, model_type, None)
    assert scorer_template(tok, path, None) == (own, "own")
    assert scorer_template(tok, path, "plain") == (T.NAMED["plain"].source, "plain")
    assert scorer_template(tok, path, "{{ 'x' }}") == ("{{ 'x' }}", "(a Jinja string from the recipe)")
    with pytest.raises(T.TemplateError, match="unknown chat template"):
        scorer_template(tok, path, "vicuna")

    tok.chat_template = GEMMA_CHAT_TEMPLATE  # the packaged Gemma's: training (and now IFD) uses its gemma
    source, name = scorer_template(tok, path, None)
    assert (source, name) == (T.resolve(tok, model_type, None).source, "gemma") and source == T.GEMMA
    for c in CONVS:  # why the switch leaves IFD unchanged for such rows: the same prompt text
        old, new = (tok.apply_chat_template(c[:-1], chat_template=t, add_generation_prompt=True, tokenize=False)
                    for t in (GEMMA_CHAT_TEMPLATE, T.GEMMA))
        assert old == new
    tok.chat_template = None  # no template: the family default training would pick
    assert scorer_template(tok, path, None) == (T.GEMMA, "gemma")


def test_the_operator_runs_without_prefect(models):
    """operators.select.run: a table in; kept rows, scored rows, rejects and the report out."""
    import pyarrow as pa
    from transformers import AutoTokenizer

    path = models["llama"]
    rows = rows_for(CONVS + [conv("Who are you?", "LotusBot.")], ["qa"] * len(CONVS) + ["identity"])
    qa = pa.Table.from_pylist(rows)
    cfg = SelectConfig.model_validate({"method": "ifd", "budget": {"percent": 50}, "ifd": {"max_ifd": None},
                                       "scorer": {"path": path}})
    bars = []

    def progress(total, desc, unit):
        from contextlib import nullcontext

        class Bar:
            def update(self, n=1):
                bars.append((desc, total, n))

        return nullcontext(Bar())

    out = run(qa, cfg, Hooks(progress=progress), sources={"d0": "docs/lotus.md"})
    scored = out.scored.to_pylist()
    assert [r["sample_id"] for r in scored] == [r["sample_id"] for r in rows]
    assert out.kept.schema.equals(qa.schema)
    assert out.kept.column("sample_id").to_pylist() == [r["sample_id"] for r in scored if r["selected"]]
    assert out.kept.num_rows == 3 + 1, "50% of the 6 scored rows, and the exempt one"
    assert {r.id for r in out.rejects} == {r["sample_id"] for r in scored if not r["selected"]}
    assert {r.reason for r in out.rejects} == {"below top 50% by ifd"}
    tok = AutoTokenizer.from_pretrained(path)
    scorer, _ = HFLossScorer.load(path)
    want = compute_ifd(scorer, tok, tok.chat_template, CONVS).loss_ratio  # the model's own template, as trained
    np.testing.assert_allclose([r["score_ifd"] for r in scored[:6]], want, rtol=1e-5)
    assert scored[6]["score_ifd"] is None and scored[6]["selected_by"] == "exempt"
    assert sum(n for _, _, n in bars) == 12 and bars[0][:2] == ("select: IFD", 12), "both passes, progress told"
    report = out.report
    assert report["stats"]["scorer"]["path"] == path and report["stats"]["scorer"]["template"] == "own"
    assert report["tables"]["by-source"] == [{"source": "docs/lotus.md", "rows": 7, "kept": 4, "dropped": 3,
                                              "exempt": 1}]
    assert report["images"]["ifd_histogram"][:8] == b"\x89PNG\r\n\x1a\n"
    assert f"Scorer: `{path}` (transformers, dtype auto), chat template own." in report["markdown"]
    assert "4 of 7 rows kept (1 exempt by strategy" in report["markdown"]
