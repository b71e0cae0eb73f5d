"""LLM backends against real components: the packaged Gemma 3 270M in process,
`transformers serve` over HTTP, and a fault-injecting OpenAI-compatible server."""
from __future__ import annotations

import asyncio
import json
import logging
import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from infuse.operators.llm import ChatRequest, LLMConfig, make_backend  # noqa: E402
from infuse.operators.llm.local_server import LocalServer  # noqa: E402
from infuse.operators.common.models import embed, local_model_path  # noqa: E402
from faulty_server import FaultyServer, default_content  # noqa: E402  (tests/ is on sys.path)

QA_SCHEMA = {
    "title": "qa",
    "type": "object",
    "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
    "required": ["question", "answer"],
}


def req(i: int, text: str, max_tokens: int = 16, **kw) -> ChatRequest:
    return ChatRequest(id=f"r{i}", messages=[{"role": "user", "content": text}], max_tokens=max_tokens, **kw)


# ---------------------------------------------------------------- local models
@pytest.mark.slow
def test_local_model_has_gemma_chat_template():
    from transformers import AutoTokenizer

    path = local_model_path()
    assert (path / "model.safetensors").exists()
    config = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in config
    gen = json.loads((path / "generation_config.json").read_text())
    assert gen["eos_token_id"] == [1, 106]  # <eos>, <end_of_turn>
    tok = AutoTokenizer.from_pretrained(path)
    text = tok.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert text == "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"


@pytest.mark.slow
def test_embed_normalised_and_semantic():
    vecs = embed(["The cat sits on the mat.", "A cat is sitting on a mat.", "Quarterly revenue fell 5%.", ""])
    assert vecs.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    sims = vecs @ vecs.T
    assert sims[0, 1] > 0.8 and sims[0, 2] < 0.3
    assert embed([]).shape == (0, 384)


# ---------------------------------------------------------- transformers backend
@pytest.fixture(scope="module")
def hf_backend():
    return make_backend({"backend": "transformers", "device": "cpu", "batch_size": 4, "max_model_len": 256})


@pytest.mark.slow
def test_transformers_batch_in_order_with_usage(hf_backend):
    prompts = ["The capital of France is", "Count: one, two,", "Hello"]
    long = "word " * 300  # > max_model_len 256: a row error, not an exception
    requests = [req(i, p, max_tokens=8, temperature=0.0) for i, p in enumerate(prompts)] + [req(3, long)]
    results = hf_backend.generate(requests)
    assert [r.id for r in results] == ["r0", "r1", "r2", "r3"]
    tok = hf_backend._tok
    for r, p in zip(results[:3], prompts):
        assert r.ok and r.text, r
        expected_prompt = tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
        assert r.usage["prompt_tokens"] == len(tok(expected_prompt, add_special_tokens=False)["input_ids"])
        assert 1 <= r.usage["completion_tokens"] <= 8
        assert r.finish_reason in ("stop", "length")
    assert results[3].error_kind == "prompt_too_long" and results[3].text is None
    # left padding must not change greedy output: alone == in a batch
    alone = hf_backend.generate([requests[1]])[0]
    assert alone.text == results[1].text


@pytest.mark.slow
def test_transformers_prefill_continues_the_reply(hf_backend):
    prefill = '[{"question": "'
    ask = "Write one question and answer about Paris as JSON."
    with_prefill = req(0, ask, max_tokens=6, temperature=0.0, prefill=prefill)
    plain = req(1, "Count: one, two,", max_tokens=6, temperature=0.0)
    both = hf_backend.generate([with_prefill, plain])
    assert [r.id for r in both] == ["r0", "r1"] and all(r.ok for r in both)
    assert both[0].text.startswith(prefill) and len(both[0].text) > len(prefill)
    tok = hf_backend._tok
    prompt = tok.apply_chat_template(with_prefill.messages, add_generation_prompt=True, tokenize=False)
    assert prompt.endswith("<start_of_turn>model\n")
    assert both[0].usage["prompt_tokens"] == len(tok(prompt + prefill, add_special_tokens=False)["input_ids"])
    assert 1 <= both[0].usage["completion_tokens"] <= 6
    # batching with a prefilled neighbour (different lengths, left padding) changes neither output
    assert [hf_backend.generate([r])[0].text for r in (with_prefill, plain)] == [r.text for r in both]
    assert not both[1].text.startswith(prefill)


def test_prefill_setting_resolves_per_backend():
    resolved = {(b, p): LLMConfig(backend=b, model="m", prefill=p).use_prefill()
                for b in ("openai", "transformers", "vllm") for p in ("auto", "on", "off")}
    assert resolved == {("openai", "auto"): False, ("openai", "on"): True, ("openai", "off"): False,
                        ("transformers", "auto"): True, ("transformers", "on"): True, ("transformers", "off"): False,
                        ("vllm", "auto"): True, ("vllm", "on"): True, ("vllm", "off"): False}


# ------------------------------------------------ openai backend vs transformers serve
@pytest.fixture(scope="module")
def served():
    with LocalServer(local_model_path(), device="cpu") as srv:
        yield srv


@pytest.mark.slow
def test_openai_backend_against_transformers_serve(served, hf_backend):
    backend = make_backend({"backend": "openai", "model": served.model, "base_url": served.base_url, "concurrency": 4})
    requests = [
        req(0, "The capital of France is", max_tokens=8, temperature=0.0),
        req(1, "Tell me about rivers.", max_tokens=12),
        req(2, "Return JSON.", max_tokens=8, json_schema=QA_SCHEMA),  # server ignores response_format
    ]
    results = backend.generate(requests)
    assert [r.id for r in results] == ["r0", "r1", "r2"]
    for r, q in zip(results, requests):
        assert r.ok and r.text, r
        assert r.usage["prompt_tokens"] > 0 and 1 <= r.usage["completion_tokens"] <= q.max_tokens
        assert r.model == served.model and r.attempts == 1 and r.latency_s > 0
    # same weights, same template, greedy: the server and the in-process backend agree
    local = hf_backend.generate([requests[0]])[0]
    assert results[0].text == local.text
    assert results[0].usage == local.usage


@pytest.mark.slow
def test_generate_inside_running_loop(served):
    backend = make_backend({"backend": "openai", "model": served.model, "base_url": served.base_url})

    async def caller():
        return backend.generate([req(0, "Hi", max_tokens=4)])

    (result,) = asyncio.run(caller())
    assert result.ok and result.usage["completion_tokens"] <= 4


# ------------------------------------------------------------- fault injection
# A generous client timeout against a server that sleeps far past it: an answer that is merely slow on a busy
# machine is never taken for a timeout, and a real one is one all the same.
FAST = {"timeout_s": 3.0, "backoff_base_s": 0.01, "backoff_max_s": 0.05}
KIND_TO_ERROR = {"timeout": "timeout", "http_500": "http_500", "http_429": "http_429", "bad_body": "bad_response"}


def expected(server: FaultyServer, request: ChatRequest, max_retries: int) -> tuple[str | None, int]:
    """(error_kind or None, attempts) the client must report, from the server's pure decision rule."""
    body = {"messages": request.messages}
    for attempt in range(max_retries + 1):
        outcome = server.decide(body, attempt)
        if outcome in ("ok", "bad_content"):
            return None, attempt + 1
    return KIND_TO_ERROR[outcome], max_retries + 1


def assert_each_result_as_the_server_decided(srv: FaultyServer, requests: list[ChatRequest], results: list,
                                            max_retries: int) -> None:
    """Every row's error kind and attempts follow the server's rule; a success holds the served content (cut
    mid-JSON for bad_content), a failure no text and its error."""
    by_id = {q.id: q for q in requests}
    for r, q in zip(results, requests):
        kind, attempts = expected(srv, q, max_retries)
        assert (r.error_kind, r.attempts, r.ok) == (kind, attempts, kind is None), r
    for r in [r for r in results if r.ok]:
        full = default_content({"messages": by_id[r.id].messages})
        assert r.text and r.usage["completion_tokens"] > 0
        assert r.text == full or full.startswith(r.text)  # bad_content is cut mid-JSON
    for r in [r for r in results if not r.ok]:
        assert r.text is None and r.error


@pytest.mark.parametrize("max_retries, failed_min, failed_max, recovered_min",
                         [(0, 5, 50, 0), (3, 0, 4, 1)])  # retries recover some rows and lose at most 4
def test_faults_nothing_lost(max_retries, failed_min, failed_max, recovered_min):
    with FaultyServer(fail_rate=0.3, seed=0, timeout_sleep_s=60.0) as srv:
        backend = make_backend({"backend": "openai", "model": "m", "base_url": srv.base_url, "concurrency": 16,
                                "max_retries": max_retries, **FAST})
        requests = [req(i, f"chunk number {i} about topic {i % 7}") for i in range(50)]
        results = backend.generate(requests)
        served_attempts = len(srv.log)
    assert [r.id for r in results] == [r.id for r in requests]
    assert_each_result_as_the_server_decided(srv, requests, results, max_retries)
    ok = [r for r in results if r.ok]
    failed = [r for r in results if not r.ok]
    assert served_attempts == sum(r.attempts for r in results)  # every attempt reached the server
    assert "timeout" in srv.outcomes and ok, "the timeout path was taken, and some rows came through"
    recovered = [r for r in ok if r.attempts > 1]
    assert failed_min <= len(failed) <= failed_max and len(recovered) >= recovered_min, (len(failed), len(recovered))


def test_400_not_retried_and_key_never_leaks(monkeypatch, caplog):
    secret = "sk-test-SECRET-0123456789"
    monkeypatch.setenv("INFUSE_TEST_KEY", secret)
    caplog.set_level(logging.DEBUG)
    with FaultyServer(fail_rate=0.0, timeout_sleep_s=60.0) as srv:
        cfg = LLMConfig(backend="openai", model="m", base_url=srv.base_url, api_key_env="INFUSE_TEST_KEY", max_retries=1, **FAST)
        backend = make_backend(cfg)
        results = backend.generate(
            [req(0, "fine"), req(1, "please __force:http_400__"), req(2, "slow __force:timeout__"), req(3, "__force:http_500__")]
        )
        auth = {e["authorization"] for e in srv.log}
    assert auth == {f"Bearer {secret}"}  # the key is sent ...
    assert results[0].ok
    assert (results[1].error_kind, results[1].attempts) == ("http_400", 1)  # client errors are final
    assert (results[2].error_kind, results[2].attempts) == ("timeout", 2)
    assert (results[3].error_kind, results[3].attempts) == ("http_500", 2)
    assert "INFUSE_TEST_KEY" in repr(backend)
    # ... and appears nowhere else, although the 400 body echoed the request headers
    assert "***" in results[1].error
    for text in [repr(backend), repr(cfg), cfg.model_dump_json(), caplog.text] + [str(r) for r in results]:
        assert secret not in text
    assert "retrying" in caplog.text


def test_json_schema_rejected_falls_back_once():
    with FaultyServer(fail_rate=0.0, reject_json_schema=True) as srv:
        backend = make_backend({"backend": "openai", "model": "m", "base_url": srv.base_url, "concurrency": 1})
        results = backend.generate([req(i, f"q{i}", json_schema=QA_SCHEMA) for i in range(3)])
        formats = [e["response_format"] for e in srv.log]
    assert all(r.ok and json.loads(r.text)["answer"] for r in results)
    assert formats == ["json_schema", "json_object", "json_object", "json_object"]
    assert backend.json_mode == "object"


def test_openai_prefill_only_when_on_and_unconstrained():
    bodies: list[dict] = []

    def content(body):
        bodies.append(body)
        return 'Paris?", "answer": "The capital."}]'

    prefill = '[{"question": "'
    with FaultyServer(fail_rate=0.0, content_fn=content) as srv:
        def run(**cfg):
            bodies.clear()
            backend = make_backend({"backend": "openai", "model": "m", "base_url": srv.base_url, "concurrency": 1, **cfg})
            results = backend.generate([req(0, "q0", prefill=prefill), req(1, "q1", prefill=prefill, json_schema=QA_SCHEMA)])
            return [r.text for r in results], sorted(bodies, key=lambda b: b["messages"][0]["content"])

        # auto (= off for openai): a plain request, and the text is the server's content as is
        texts, sent = run()
        assert texts == [content({})] * 2
        assert all("continue_final_message" not in b and b["messages"][-1]["role"] == "user" for b in sent)
        # on: the prefill is the final assistant message, continued; the text starts with it
        texts, sent = run(prefill="on")
        assert texts == [prefill + content({}), content({})]  # never together with response_format
        assert sent[0]["messages"][-1] == {"role": "assistant", "content": prefill}
        assert (sent[0]["continue_final_message"], sent[0]["add_generation_prompt"]) == (True, False)
        assert "continue_final_message" not in sent[1] and "response_format" in sent[1]
        texts, sent = run(prefill="on", json_mode="off")
        assert texts == [prefill + content({})] * 2 and all(b["continue_final_message"] for b in sent)
    assert json.loads(texts[0]) == [{"question": "Paris?", "answer": "The capital."}]


def test_connection_error_is_a_result():
    from infuse.operators.llm.local_server import free_port

    backend = make_backend(
        {"backend": "openai", "model": "m", "base_url": f"http://127.0.0.1:{free_port()}/v1", "max_retries": 2, **FAST}
    )
    (result,) = backend.generate([req(0, "hi")])
    assert (result.error_kind, result.attempts) == ("connection", 3)


def test_config_is_strict():
    with pytest.raises(ValueError):
        LLMConfig.model_validate({"backend": "openai", "model": "m", "api_key": "sk-oops"})
    with pytest.raises(ValueError):
        make_backend({"backend": "openai"})  # no model


# -------------------------------------------------------------------- vllm
def test_vllm_missing_is_a_clear_error():
    try:
        import vllm  # noqa: F401

        pytest.skip("vllm is installed")
    except ImportError:
        pass
    with pytest.raises(RuntimeError, match="vllm"):
        make_backend({"backend": "vllm"})


@pytest.mark.gpu
@pytest.mark.slow
def test_vllm_tiny_batch():
    pytest.importorskip("vllm")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("vllm backend needs CUDA")
    backend = make_backend({"backend": "vllm", "max_model_len": 2048, "gpu_memory_utilization": 0.5})
    # room enough for the guided JSON to close: a reply cut at max_tokens would not parse
    requests = [req(0, "The capital of France is"), req(1, "Write a question and answer.", max_tokens=512,
                                                        json_schema=QA_SCHEMA)]
    requests.append(req(2, "word " * 3000))
    results = backend.generate(requests)
    assert [r.id for r in results] == ["r0", "r1", "r2"]
    assert results[0].ok and results[0].usage["completion_tokens"] >= 1
    assert results[1].ok and results[1].finish_reason == "stop", results[1]
    assert set(json.loads(results[1].text)) >= {"question", "answer"}
    assert results[2].error_kind == "prompt_too_long"


def test_stop_string_ends_a_prefilled_reply_early():
    """With a stop string, generation ends at its first occurrence past the prefill and the reply keeps it.
    The stop string is taken from the model's own free (greedy) reply, so the stop is always reached: the
    packaged model closes this JSON with "}\\n]", never "}]", and a fixed "}]" tested nothing."""
    from infuse.operators.llm import ChatRequest, make_backend
    from infuse.operators.llm.transformers_backend import _cut_at_stop

    assert _cut_at_stop('[{"q": "a"}] and more }]', ["}]"], 1) == ('[{"q": "a"}]', True)
    assert _cut_at_stop("no stop here", ["}]"], 0) == ("no stop here", False)
    backend = make_backend({"backend": "transformers", "device": "cpu"})
    msgs = [{"role": "user", "content": "List one fact about LotusDB as JSON."}]
    prefill = '[{"question": "What is LotusDB?", "answer": "An embedded database."}'
    (ref,) = backend.generate([ChatRequest(id="f", messages=msgs, max_tokens=24, temperature=0.0, prefill=prefill)])
    assert ref.ok and ref.text.startswith(prefill) and ref.usage["completion_tokens"] >= 12, ref
    # a 4-character piece of the reply, past its first few characters, found nowhere else in the text
    stop = next((ref.text[k:k + 4] for k in range(len(prefill) + 6, len(ref.text) - 8)
                 if ref.text.count(ref.text[k:k + 4]) == 1), None)
    assert stop, f"the free reply has no unique piece to stop at: {ref.text!r}"
    cut = ref.text.index(stop) + len(stop)
    (res,) = backend.generate([ChatRequest(id="s", messages=msgs, max_tokens=24, temperature=0.0, prefill=prefill,
                                           stop=[stop])])  # greedy: the same tokens until the stop
    assert res.ok, res.error
    assert res.text == ref.text[:cut] and res.finish_reason == "stop", ("the reply ends at the stop string", stop)
    assert res.usage["completion_tokens"] < ref.usage["completion_tokens"], "generation itself stopped early"
