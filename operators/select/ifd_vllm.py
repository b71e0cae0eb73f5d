"""The IFD losses through vLLM's `prompt_logprobs` (GPU; vllm is an extra, imported lazily).

Each (context, targets) pair is one prompt of token ids, `context + targets`,
with `max_tokens=1` and `prompt_logprobs=0`: vLLM returns, for every prompt
position, the log-probability of the prompt token there (computed in fp32 from
the model's logits), and the loss of a pair is minus the mean over its target
positions. All prompts go into one `generate` call so vLLM's scheduler batches
them; prefix caching shares the chat template's common head.

Not exercised by the test suite (no GPU there): it is the same arithmetic as
the transformers engine, read from vLLM's output, and `bench/ifd_bench.py
--gpu --engine vllm` compares the two on a CUDA machine.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import numpy as np

from infuse.operators.select.ifd import Pair


class VLLMLossScorer:
    def __init__(self, path: str, dtype: str = "auto", gpu_memory_utilization: float = 0.85,
                 max_model_len: int | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import vllm
        except ImportError as exc:
            raise RuntimeError("scorer engine 'vllm' needs the vllm package (a GPU extra, not installed here); "
                               "use engine 'transformers'") from exc
        self.vllm = vllm
        kwargs: dict[str, Any] = {"model": path, "dtype": dtype, "gpu_memory_utilization": gpu_memory_utilization,
                                  "enable_prefix_caching": True}
        if max_model_len:
            kwargs["max_model_len"] = max_model_len
        self.llm = vllm.LLM(**kwargs)

    def mean_losses(self, pairs: Sequence[Pair], progress: Callable[[int], None] | None = None) -> np.ndarray:
        params = self.vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False)
        outs = self.llm.generate([{"prompt_token_ids": list(c) + list(t)} for c, t in pairs], params, use_tqdm=False)
        losses = np.full(len(pairs), np.nan)
        for k, ((ctx, tgt), out) in enumerate(zip(pairs, outs)):
            # prompt_logprobs[i] is {token id: Logprob} for prompt token i given the ones before it (None at 0).
            # vLLM hands them back as Python dicts, so reading them is a loop over its output.
            per_pos = out.prompt_logprobs[len(ctx):len(ctx) + len(tgt)]
            lp = np.fromiter((d[t].logprob for d, t in zip(per_pos, tgt)), dtype=np.float64, count=len(tgt))
            losses[k] = -lp.mean()
        if progress:
            progress(len(pairs))
        return losses
