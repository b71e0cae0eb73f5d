"""IFD (instruction-following difficulty), exactly as defined and batched.

For a sample with prompt Q and answer A (the last assistant turn):

- s(A|Q) is the mean cross-entropy of A's tokens given Q rendered in the
  scorer's chat template (with the generation prompt, so A follows where the
  model's reply starts);
- s(A) is the mean cross-entropy of the SAME token ids after only a start
  token (BOS, or EOS for tokenizers without one): A is tokenized once and its
  ids are reused, so both passes score identical targets;
- IFD = s(A|Q) / s(A), the loss ratio of the paper (`loss_ratio`).
  Cherry_LLM's code ranks by the perplexity ratio exp(s(A|Q)) / exp(s(A)) =
  exp(s(A|Q) - s(A)) instead (`ppl_ratio`). Both are >= 1 exactly when the
  prompt does not help, so the IFD >= 1 cut is the same, but they rank the rest
  differently: the loss ratio by the relative gain, the perplexity ratio by the
  absolute one (an answer that is hard in both passes ranks higher by it).

Speed: both passes of every row go into one list of sequences, sorted by length
and cut into batches by a padded-token budget; the body runs once per batch and
the vocabulary projection (the cost that dominates for 150k-260k vocabularies)
runs only on the hidden states at the answer positions, gathered before the LM
head, in chunks, upcast to fp32 for the cross-entropy. No per-token Python.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from infuse.operators.common.base import check_stop

log = logging.getLogger("infuse.select.ifd")

Pair = tuple[list[int], list[int]]  # (context ids, target ids): the targets are scored, the context is not


class LossScorer(Protocol):
    """Mean cross-entropy of each pair's targets given its context."""

    def mean_losses(self, pairs: Sequence[Pair], progress: Callable[[int], None] | None = None) -> np.ndarray: ...


@dataclass
class IFDScores:
    s_a_given_q: np.ndarray  # NaN where the row could not be scored
    s_a: np.ndarray
    answer_tokens: np.ndarray
    prompt_tokens: np.ndarray
    errors: list[str | None] = field(default_factory=list)

    @property
    def loss_ratio(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.s_a_given_q / self.s_a

    @property
    def ppl_ratio(self) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            return np.exp(self.s_a_given_q - self.s_a)

    def variant(self, name: str) -> np.ndarray:
        return self.loss_ratio if name == "loss_ratio" else self.ppl_ratio


def split_conversation(messages: Any) -> tuple[list[dict[str, str]], str] | None:
    """(the prompt turns, the last assistant answer), or None when the shape is wrong."""
    if not isinstance(messages, list) or len(messages) < 2:
        return None
    if any(not isinstance(m, dict) or not isinstance(m.get("content"), str) for m in messages):
        return None
    if messages[-1].get("role") != "assistant" or not any(m.get("role") == "user" for m in messages[:-1]):
        return None
    prompt = [{"role": m["role"], "content": m["content"]} for m in messages[:-1]]
    return prompt, messages[-1]["content"]


def start_token(tokenizer: Any) -> int:
    """The one token s(A) is conditioned on: BOS, else EOS (a document boundary for BOS-less tokenizers)."""
    for tid in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return int(tid)
    raise ValueError("the scorer's tokenizer has neither a BOS nor an EOS token to start s(A) from")


def encode(tokenizer: Any, template: str, conversations: Sequence[Any], max_prompt_tokens: int = 1024,
           max_answer_tokens: int = 1024) -> list[tuple[list[int], list[int]] | str]:
    """Per row, (prompt ids, answer ids) or the reason it cannot be scored.

    The prompt is the chat template with the generation prompt, tokenized as rendered (the template
    writes its own BOS); the answer is tokenized once, alone, with no special tokens (stripped, as
    the templates trim message content).
    """
    out: list[tuple[list[int], list[int]] | str] = []
    prompts: list[str] = []
    answers: list[str] = []
    where: list[int] = []
    for i, messages in enumerate(conversations):
        turns = split_conversation(messages)
        if turns is None:
            out.append("messages must be user/assistant turns ending with the assistant")
            continue
        try:
            text = tokenizer.apply_chat_template(turns[0], chat_template=template, add_generation_prompt=True,
                                                 tokenize=False)
        except Exception as exc:  # a template that rejects this conversation fails the row
            out.append(f"chat template failed: {type(exc).__name__}: {exc}")
            continue
        out.append("")
        prompts.append(text)
        answers.append(turns[1].strip())
        where.append(i)
    if where:
        p_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
        a_ids = tokenizer(answers, add_special_tokens=False)["input_ids"]
        for i, p, a in zip(where, p_ids, a_ids):
            if not a:
                out[i] = "the answer has no tokens"
                continue
            if not p:
                out[i] = "the prompt has no tokens"
                continue
            if len(p) > max_prompt_tokens:  # keep the first token (BOS) and the end, where the reply starts
                p = p[:1] + p[len(p) - max_prompt_tokens + 1:]
            out[i] = (list(p), list(a[:max_answer_tokens]))
    return out


def compute_ifd(scorer: LossScorer, tokenizer: Any, template: str, conversations: Sequence[Any],
                max_prompt_tokens: int = 1024, max_answer_tokens: int = 1024,
                progress: Callable[[int], None] | None = None) -> IFDScores:
    """s(A|Q), s(A) and the token counts of every row; both passes of all rows scored as one batch list."""
    encoded = encode(tokenizer, template, conversations, max_prompt_tokens, max_answer_tokens)
    n = len(encoded)
    start = start_token(tokenizer)
    ok = [i for i, e in enumerate(encoded) if not isinstance(e, str)]
    pairs: list[Pair] = []
    for i in ok:
        prompt, answer = encoded[i]  # type: ignore[misc]
        pairs.append((prompt, answer))  # s(A|Q)
        pairs.append(([start], answer))  # s(A): the same answer ids
    losses = scorer.mean_losses(pairs, progress) if pairs else np.zeros(0)
    s_aq, s_a = np.full(n, np.nan), np.full(n, np.nan)
    n_ans, n_prompt = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    for k, i in enumerate(ok):
        s_aq[i], s_a[i] = losses[2 * k], losses[2 * k + 1]
        n_prompt[i], n_ans[i] = len(pairs[2 * k][0]), len(pairs[2 * k][1])
    errors = [e if isinstance(e, str) else None for e in encoded]
    return IFDScores(s_aq, s_a, n_ans, n_prompt, errors)


# ---- the transformers engine ------------------------------------------------------------------------------


def resolve_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_dtype(dtype: str, device: str) -> Any:
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)


def length_batches(lengths: Sequence[int], batch_tokens: int, max_batch: int) -> list[list[int]]:
    """Indices cut into batches, longest first, each within `batch_tokens` padded tokens and `max_batch` rows."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        width = lengths[cur[0]] if cur else lengths[i]  # the first (longest) sets the padded width
        if cur and ((len(cur) + 1) * width > batch_tokens or len(cur) >= max_batch):
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches


class HFLossScorer:
    """Batched answer-only cross-entropy with a transformers causal LM."""

    def __init__(self, model: Any, pad_id: int, device: str = "cpu", batch_tokens: int = 16_384, max_batch: int = 64,
                 padding_side: str = "right") -> None:
        self.model, self.pad_id, self.device = model, int(pad_id), device
        self.batch_tokens, self.max_batch, self.padding_side = batch_tokens, max_batch, padding_side
        self.body = model.get_decoder()
        self.head = model.get_output_embeddings()
        self.softcap = getattr(model.config, "final_logit_softcapping", None)
        vocab = int(self.head.weight.shape[0]) if self.head is not None else int(model.config.vocab_size)
        self.head_chunk = max(16, (1 << 26) // vocab)  # positions per LM-head chunk: about 64M logits
        self.gather = self.head is not None and self._gather_matches()
        if not self.gather:
            log.warning("%s: hidden states + LM head do not reproduce the model's logits; scoring with full "
                        "logits (slower)", type(model).__name__)

    @classmethod
    def load(cls, path: str, dtype: str = "auto", device: str = "auto", **kw: Any) -> tuple["HFLossScorer", Any]:
        """(the scorer, its tokenizer) for a local model dir."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        dev = resolve_device(device)
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=resolve_dtype(dtype, dev))
        model.to(dev)
        model.eval()
        pad = tok.pad_token_id if tok.pad_token_id is not None else start_token(tok)
        return cls(model, pad, dev, **kw), tok

    def _gather_matches(self) -> bool:
        """Does body -> gather -> LM head (+ softcap) give the model's own logits? Checked once on a few
        tokens, so an architecture that scales its logits some other way falls back to full logits."""
        import torch

        ids = torch.arange(3, 11, device=self.device).unsqueeze(0) % int(self.model.config.vocab_size)
        with torch.inference_mode():
            full = self.model(input_ids=ids).logits[0, -3:].float()
            mine = self._logits(self.body(input_ids=ids).last_hidden_state[0, -3:]).float()
        tol = 1e-3 if mine.dtype == torch.float32 and self.head.weight.dtype == torch.float32 else 5e-2
        return bool(torch.allclose(full, mine, atol=tol * max(1.0, float(full.abs().max())), rtol=0))

    def _logits(self, hidden: Any) -> Any:
        import torch

        logits = self.head(hidden)
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits

    def mean_losses(self, pairs: Sequence[Pair], progress: Callable[[int], None] | None = None) -> np.ndarray:
        out = np.full(len(pairs), np.nan)
        lengths = [len(c) + len(t) - 1 for c, t in pairs]  # the last target is predicted, never fed
        for batch in length_batches(lengths, self.batch_tokens, self.max_batch):
            check_stop()
            out[batch] = self._batch([pairs[i] for i in batch])
            if progress:
                progress(len(batch))
        return out

    def _batch(self, pairs: list[Pair]) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        width = max(len(c) + len(t) - 1 for c, t in pairs)
        b = len(pairs)
        ids = torch.full((b, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((b, width), dtype=torch.long)
        pos = torch.zeros((b, width), dtype=torch.long)
        rows, cols, targets, counts = [], [], [], []
        for r, (ctx, tgt) in enumerate(pairs):
            seq = ctx + tgt[:-1]
            off = width - len(seq) if self.padding_side == "left" else 0
            ids[r, off:off + len(seq)] = torch.tensor(seq)
            mask[r, off:off + len(seq)] = 1
            pos[r, off:off + len(seq)] = torch.arange(len(seq))
            first = off + len(ctx) - 1  # the last context position predicts the first target
            cols.append(torch.arange(first, first + len(tgt)))
            rows.append(torch.full((len(tgt),), r, dtype=torch.long))
            targets.append(torch.tensor(tgt))
            counts.append(len(tgt))
        rows_t, cols_t, tgt_t = torch.cat(rows), torch.cat(cols), torch.cat(targets)
        ids, mask, pos = ids.to(self.device), mask.to(self.device), pos.to(self.device)
        with torch.inference_mode():
            if self.gather:
                hidden = self.body(input_ids=ids, attention_mask=mask, position_ids=pos).last_hidden_state
                picked = hidden[rows_t.to(self.device), cols_t.to(self.device)]  # [answer tokens, hidden]
                del hidden
            else:
                logits_all = self.model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
                picked = logits_all[rows_t.to(self.device), cols_t.to(self.device)]
                del logits_all
            tgt_dev = tgt_t.to(self.device)
            losses = torch.empty(len(tgt_t), dtype=torch.float32, device=self.device)
            for s in range(0, len(tgt_t), self.head_chunk):
                part = picked[s:s + self.head_chunk]
                logits = (self._logits(part) if self.gather else part).float()
                losses[s:s + self.head_chunk] = F.cross_entropy(logits, tgt_dev[s:s + self.head_chunk],
                                                                reduction="none")
            sums = torch.zeros(b, dtype=torch.float64, device=self.device).index_add_(
                0, rows_t.to(self.device), losses.double())
        return (sums.cpu() / torch.tensor(counts, dtype=torch.float64)).numpy()


def describe(scores: IFDScores, variant: str) -> dict[str, Any]:
    """Summary numbers for the report."""
    v = scores.variant(variant)
    ok = v[np.isfinite(v)]
    return {"scored": int(len(ok)), "answer_tokens": int(scores.answer_tokens.sum()),
            "prompt_tokens": int(scores.prompt_tokens.sum()),
            "median": float(np.median(ok)) if len(ok) else None,
            "share_ge_1": float((ok >= 1).mean()) if len(ok) else None,
            "mean_s_a_given_q": _mean(scores.s_a_given_q), "mean_s_a": _mean(scores.s_a)}


def _mean(x: np.ndarray) -> float | None:
    ok = x[np.isfinite(x)]
    return float(ok.mean()) if len(ok) else None
