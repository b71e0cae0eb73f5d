"""filter: data-juicer stats as columns, fixed and 3σ/MAD/log bounds, rejects, plots."""
from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from infuse.operators.common import dj
from infuse.operators.filter import FilterConfig, QualityFilter

ZH_PARA = (
    "自然语言处理是计算机科学领域与人工智能领域中的一个重要方向。"
    "它研究能实现人与计算机之间用自然语言进行有效通信的各种理论和方法。"
    "自然语言处理是一门融语言学、计算机科学、数学于一体的科学。"
)


def chunks(texts: list[str], kinds: list[str] | None = None) -> pa.Table:
    return pa.table({
        "chunk_id": [f"c{i}" for i in range(len(texts))],
        "text": texts,
        "kind": kinds or ["text"] * len(texts),
    })


def length_filter(**bound) -> QualityFilter:
    return QualityFilter(FilterConfig(ops=[{"name": "text_length_filter", **bound}]))


def test_stats_are_columns_and_survive_apply():
    q = length_filter(min=3)
    s = q.stats_batch(chunks(["ab", "abcd", "abcdef"]))
    assert s.column("stat_text_len").to_pylist() == [2.0, 4.0, 6.0]
    out, rejects = q.apply_batch(s, q.fit(s))
    assert out.column("chunk_id").to_pylist() == ["c1", "c2"]
    assert "stat_text_len" in out.column_names and "text" in out.column_names
    r = rejects[0]
    assert (r.id, r.reason) == ("c0", "text_len_too_low")
    assert r.detail == {"stat": "text_len", "value": 2.0, "bound": 3.0, "side": "low", "source": "fixed", "also": []}


def test_three_sigma_bounds_hand_computed():
    # lengths 2 4 4 4 5 5 7 9: mean = 40/8 = 5;
    # squared deviations 9 1 1 1 0 0 4 16 -> sum 32, population variance 32/8 = 4, σ = 2.
    # k = 1 -> [5 - 2, 5 + 2] = [3, 7]; 2 is too low, 9 too high, 7 stays (closed interval).
    q = length_filter(auto={"k": 1, "min_samples": 2})
    s = q.stats_batch(chunks(["x" * n for n in (2, 4, 4, 4, 5, 5, 7, 9)]))
    b = q.fit(s.select(["stat_text_len"]))["text_len"]  # fit needs only the stat column
    assert (b["mean"], b["std"], b["low"], b["high"]) == (5.0, 2.0, 3.0, 7.0)
    assert (b["low_source"], b["high_source"], b["source"]) == ("auto", "auto", "auto")
    assert (b["would_reject_low"], b["would_reject_high"]) == (1, 1)
    out, rejects = q.apply_batch(s, q.fit(s))
    assert [(r.id, r.reason, r.detail["bound"]) for r in rejects] == [
        ("c0", "text_len_too_low", 3.0), ("c7", "text_len_too_high", 7.0)]
    assert out.num_rows == 6


def stat_table(values: list[float]) -> pa.Table:
    return pa.table({"stat_text_len": pa.array(values, pa.float64())})


def test_log_scale_bounds():
    # log1p(x) = 1, 2, 3: mean 2, σ = sqrt(2/3); k = 1 -> expm1(2 ± sqrt(2/3)).
    q = length_filter(auto={"k": 1, "scale": "log", "min_samples": 2})
    b = q.fit(stat_table([math.expm1(1), math.expm1(2), math.expm1(3)]))["text_len"]
    assert b["low"] == pytest.approx(math.expm1(2 - math.sqrt(2 / 3)))
    assert b["high"] == pytest.approx(math.expm1(2 + math.sqrt(2 / 3)))


def test_mad_is_robust_where_sigma_is_not():
    values = [1, 2, 3, 4, 100]
    # sigma: mean 22, σ = sqrt((21²+20²+19²+18²+78²)/5) = sqrt(1522) ≈ 39.01 -> high ≈ 139: 100 is kept.
    sigma = length_filter(auto={"k": 3, "min_samples": 2}).fit(stat_table(values))["text_len"]
    assert sigma["high"] == pytest.approx(22 + 3 * math.sqrt(1522))
    # mad: median 3, |x - 3| = 2 1 0 1 97 -> MAD 1, spread 1.4826 -> [3 - 4.4478, 3 + 4.4478]: 100 is out.
    mad = length_filter(auto={"k": 3, "method": "mad", "min_samples": 2}).fit(stat_table(values))["text_len"]
    assert mad["low"] == pytest.approx(3 - 3 * 1.4826)
    assert mad["high"] == pytest.approx(3 + 3 * 1.4826)
    assert mad["would_reject_high"] == 1


def test_one_sided_auto_combined_with_fixed():
    # fixed min 3 wins on the low side; auto (σ = 2, mean 5, k = 1) sets only the high side: 7.
    q = length_filter(min=3, auto={"k": 1, "side": "high", "min_samples": 2})
    b = q.fit(stat_table([2, 4, 4, 4, 5, 5, 7, 9]))["text_len"]
    assert (b["low"], b["high"], b["low_source"], b["high_source"], b["source"]) == (3, 7.0, "fixed", "auto", "auto+fixed")
    low_only = length_filter(auto={"k": 1, "side": "low", "min_samples": 2}).fit(stat_table([2, 4, 4, 4, 5, 5, 7, 9]))
    assert (low_only["text_len"]["low"], low_only["text_len"]["high"]) == (3.0, None)


def test_auto_is_skipped_below_min_samples():
    b = length_filter(auto={"k": 1}).fit(stat_table([1, 2, 3]))["text_len"]
    assert b["low"] is None and b["high"] is None and b["source"] == "none"
    assert "min_samples" in b["auto"]["skipped"]


def test_dj_params_and_dj_defaults_are_bounds():
    q = QualityFilter(FilterConfig(ops=[{"name": "text_length_filter", "params": {"min_len": 4, "max_len": 5}}]))
    b = q.fit(stat_table([1, 2]))["text_len"]
    assert (b["low"], b["high"]) == (4.0, 5.0)
    # nothing set: data-juicer's own default (text_length_filter min_len=10, no max)
    b = QualityFilter(FilterConfig(ops=[{"name": "text_length_filter"}])).fit(stat_table([1, 2]))["text_len"]
    assert (b["low"], b["high"]) == (10.0, None)
    # min: null keeps the stat unbounded
    b = length_filter(min=None).fit(stat_table([1, 2]))["text_len"]
    assert (b["low"], b["high"]) == (None, None)


def test_failed_stat_is_rejected_and_null_stat_is_not():
    q = length_filter(min=1)
    t = pa.table({"chunk_id": ["a", "b", "c"], "text": ["x", "y", "z"],
                  "stat_text_len": pa.array([float("nan"), None, 5.0], pa.float64())})
    out, rejects = q.apply_batch(t, q.fit(t))
    assert out.column("chunk_id").to_pylist() == ["b", "c"]
    assert [(r.id, r.reason) for r in rejects] == [("a", "stat_failed")]


def test_first_failing_stat_is_the_reason_others_are_listed():
    cfg = FilterConfig(ops=[
        {"name": "text_length_filter", "min": 10},
        {"name": "alphanumeric_filter", "params": {"tokenization": False}, "min": 0.9},
    ])
    q = QualityFilter(cfg)
    s = q.stats_batch(chunks(["a b!"]))
    _, rejects = q.apply_batch(s, q.fit(s))
    assert rejects[0].reason == "text_len_too_low"
    assert rejects[0].detail["also"] == [{"stat": "alnum_ratio", "value": 0.5, "bound": 0.9, "side": "low"}]


def test_chinese_words_are_counted_with_jieba():
    cfg = FilterConfig(ops=[{"name": "infuse_words_num"}, {"name": "words_num_filter", "column": "dj_num_words",
                                                           "only_lang": ["zh", "en"]}])
    s = QualityFilter(cfg).stats_batch(chunks([ZH_PARA, "three plain words"]))
    ours, theirs = s.column("stat_num_words").to_pylist(), s.column("stat_dj_num_words").to_pylist()
    assert ours[0] >= 35  # jieba: ~40 words
    assert theirs[0] <= 2  # data-juicer splits on whitespace: the paragraph is one "word"
    assert ours[1] == theirs[1] == 3.0


def test_whitespace_word_filters_are_auto_gated_to_english():
    q = QualityFilter(FilterConfig(ops=[{"name": "words_num_filter", "min": 1}]))
    assert q.notes
    s = q.stats_batch(chunks([ZH_PARA, "two words"]))
    assert s.column("stat_num_words").to_pylist() == [None, 2.0]


def test_word_repetition_uses_jieba_words():
    rep = "我们今天学习自然语言处理。" * 6
    q = QualityFilter(FilterConfig(ops=[{"name": "infuse_word_repetition", "params": {"rep_len": 3}, "max": 0.5}]))
    s = q.stats_batch(chunks([rep, ZH_PARA]))
    r0, r1 = s.column("stat_word_rep_ratio").to_pylist()
    assert r0 > 0.8 and r1 < 0.1  # the paragraph repeats one 3-gram (自然语言处理 是 ...)
    _, rejects = q.apply_batch(s, q.fit(s))
    assert [(r.id, r.reason) for r in rejects] == [("c0", "word_rep_ratio_too_high")]


def test_duplicate_stat_names_need_a_column():
    with pytest.raises(ValueError, match="give one a `column` name"):
        QualityFilter(FilterConfig(ops=[{"name": "text_length_filter"}, {"name": "text_length_filter"}]))


def test_unknown_and_hub_only_ops():
    with pytest.raises(ValueError, match="did you mean text_length_filter"):
        FilterConfig(ops=[{"name": "text_lenght_filter"}])
    with pytest.raises(dj.DjAssetError, match="KenLM"):
        QualityFilter(FilterConfig(ops=[{"name": "perplexity_filter"}]))


def test_plots_are_pngs_with_bounds():
    q = length_filter(min=3, auto={"k": 1, "side": "high", "min_samples": 2})
    s = stat_table([2, 4, 4, 4, 5, 5, 7, 9])
    pngs = q.plots(s, q.fit(s))
    assert set(pngs) == {"text_len"}
    assert pngs["text_len"][:8] == b"\x89PNG\r\n\x1a\n" and len(pngs["text_len"]) > 5000


def test_default_recipe_runs_offline_on_chinese_and_english():
    q = QualityFilter(FilterConfig.default())
    texts = [ZH_PARA, "An English paragraph about a tool.\nIt has two lines of text in it, both plain."]
    s = q.stats_batch(chunks(texts))
    row = {c: s.column(c).to_pylist() for c in q.stat_columns}
    assert all(v is not None and np.isfinite(v) for vals in row.values() for v in vals)
    # Gemma tokenizer (packaged, offline) for the token ratio: Chinese ~1-2 letters per token, English more
    zh_ratio, en_ratio = row["stat_alpha_token_ratio"]
    assert 0.5 < zh_ratio < 2.5 < en_ratio
    assert row["stat_num_words"][0] >= 35


def test_a_stat_op_says_which_chunks_are_out_and_why():
    from infuse.operators.filter.stat_ops import OutOfBounds, stat_op
    from infuse.operators.filter.config import FilterOpSpec

    op = stat_op(FilterOpSpec(name="text_length_filter", min=3, max=8))
    t = pa.table({"stat_text_len": pa.array([1.0, 5.0, None, float("nan"), 9.0], pa.float64())})
    out = op.outside(t, {"low": 3.0, "high": 8.0})
    assert sorted(out) == [0, 3, 4], "in range and null (op not applied) are kept"
    assert out[0] == OutOfBounds("text_len", 1.0, 3.0, "low") and out[4] == OutOfBounds("text_len", 9.0, 8.0, "high")
    assert (out[3].side, out[3].bound, math.isnan(out[3].value)) == ("failed", None, True)
    assert (out[0].reason, out[0].message("fixed")) == ("text_len_too_low", "text_len=1 < low bound 3 (fixed)")
    assert (out[4].reason, out[4].message("auto")) == ("text_len_too_high", "text_len=9 > high bound 8 (auto)")
    assert (out[3].reason, out[3].message(None)) == ("stat_failed", "text_len could not be computed")
    assert sorted(op.outside(t, {})) == [3], "no bounds: only a failed stat is out"
