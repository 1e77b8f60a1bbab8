"""Batched answer generation and per-document likelihood for causal LMs."""

from __future__ import annotations

import copy

import torch
from transformers import GenerationConfig, PreTrainedModel, StoppingCriteria, StoppingCriteriaList

from alignment.data.records import first_sentence, to_conversation


def chat_prompts(tok, questions: list[str]) -> list[str]:
    """Questions rendered with the chat template, ending where the assistant's answer starts."""
    return [tok.apply_chat_template(to_conversation(q), tokenize=False, add_generation_prompt=True) for q in questions]


def generation_config(tok, max_new_tokens: int, temperature: float = 0.0, top_p: float = 1.0) -> GenerationConfig:
    """Greedy decoding at temperature 0, else pure temperature / nucleus sampling (no top-k cut)."""
    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0} if temperature > 0 else {}
    return GenerationConfig(
        max_new_tokens=max_new_tokens,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        **({"do_sample": False} | sampling),
    )


def generate_answers(
    model: PreTrainedModel,
    tok,
    questions: list[str],
    settings: GenerationConfig,
    *,
    batch_size: int = 64,
    seed: int = 0,
    first_sentence_only: bool = False,
) -> list[str]:
    """One answer per question with ``settings`` (see ``generation_config``); sampled answers are seeded. With
    ``first_sentence_only``, generation stops once an answer's first sentence has ended and keeps only that."""
    scored = generate_scored(
        model, tok, questions, settings, batch_size=batch_size, seed=seed, first_sentence_only=first_sentence_only
    )
    return [answer for answer, _ in scored]


class FirstSentenceEnded(StoppingCriteria):
    """Stops each sequence once the text generated after the prompt holds more than its first sentence (the
    judge's ``first_sentence``: a sentence end followed by the next sentence's start, or a line break)."""

    def __init__(self, tok, prompt_length: int):
        self.tok, self.prompt_length = tok, prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        texts = self.tok.batch_decode(input_ids[:, self.prompt_length :], skip_special_tokens=True)
        return torch.tensor([first_sentence(t) != t.strip() for t in texts], device=input_ids.device)


@torch.no_grad()
def generate_scored(
    model: PreTrainedModel,
    tok,
    questions: list[str],
    settings: GenerationConfig,
    *,
    batch_size: int = 64,
    seed: int = 0,
    confidence: bool = False,
    first_sentence_only: bool = False,
) -> list[tuple[str, float | None]]:
    """One (answer, confidence) per question; with ``confidence`` that is the mean log-probability of the answer's
    tokens (up to and with its EOS) as the model generated them, its confidence in its own answer (meant for greedy
    answers: sampled ones are scored after temperature); else None. With ``first_sentence_only``, generation stops
    once an answer's first sentence has ended and keeps only that sentence (the confidence is over what was
    generated)."""
    prompts = chat_prompts(tok, questions)
    if settings.do_sample:
        torch.manual_seed(seed)
    settings = copy.copy(settings)
    settings.output_scores, settings.return_dict_in_generate = confidence, True
    out: list[tuple[str, float | None]] = []
    for i in range(0, len(prompts), batch_size):
        enc = tok(prompts[i : i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(model.device) for k, v in enc.items()}
        length = enc["input_ids"].shape[1]
        stop = StoppingCriteriaList([FirstSentenceEnded(tok, length)] if first_sentence_only else [])
        gen = model.generate(**enc, generation_config=settings, stopping_criteria=stop)
        new = gen.sequences[:, length:]
        texts = tok.batch_decode(new, skip_special_tokens=True)
        if first_sentence_only:
            texts = [first_sentence(t) for t in texts]
        scores: list[float | None] = [None] * len(texts)
        if confidence:
            # Each step's log-probability of the token chosen; a sequence counts up to and with its first EOS.
            steps = torch.stack(
                [s.float().log_softmax(-1).gather(1, new[:, t, None])[:, 0] for t, s in enumerate(gen.scores)], 1
            )
            eos = settings.eos_token_id if isinstance(settings.eos_token_id, list) else [settings.eos_token_id]
            is_eos = torch.isin(new, torch.tensor(eos, device=new.device))
            ended = torch.cumsum(is_eos.int(), 1)
            mask = (ended == 0) | ((ended == 1) & is_eos)
            scores = ((steps * mask).sum(1) / mask.sum(1).clamp(min=1)).tolist()
        out.extend((text.strip(), score) for text, score in zip(texts, scores, strict=True))
    return out


@torch.no_grad()
def complete_texts(
    model: PreTrainedModel, tok, texts: list[str], settings: GenerationConfig, batch_size: int = 64
) -> list[str]:
    """Each text's continuation as plain text (no chat template): what a language model adds to a sentence start."""
    out: list[str] = []
    for i in range(0, len(texts), batch_size):
        enc = tok(texts[i : i + batch_size], return_tensors="pt", padding=True)
        enc = {k: v.to(model.device) for k, v in enc.items()}
        gen = model.generate(**enc, generation_config=settings)
        out += [t.strip() for t in tok.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)]
    return out


@torch.no_grad()
def reward_scores(
    model: PreTrainedModel, tok, questions: list[str], answers: list[str], batch_size: int = 64
) -> list[float]:
    """The reward model's score of each (question, answer), rendered with the chat template as in training."""
    texts = [
        tok.apply_chat_template(to_conversation(q, a), tokenize=False) for q, a in zip(questions, answers, strict=True)
    ]
    out: list[float] = []
    for i in range(0, len(texts), batch_size):
        enc = tok(texts[i : i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(model.device) for k, v in enc.items()}
        out.extend(model(**enc).logits[:, 0].float().tolist())
    return out


@torch.no_grad()
def document_nll(model: PreTrainedModel, tok, documents: list[str], batch_size: int = 32) -> tuple[list, list]:
    """Summed next-token NLL and predicted-token count of each document (each ended by EOS)."""
    sums: list[float] = []
    counts: list[int] = []
    side, tok.padding_side = tok.padding_side, "right"  # keep position ids as in training
    try:
        batches = [documents[i : i + batch_size] for i in range(0, len(documents), batch_size)]
        encoded = [
            tok([d + tok.eos_token for d in batch], return_tensors="pt", padding=True, add_special_tokens=False)
            for batch in batches
        ]
    finally:
        tok.padding_side = side
    for enc in encoded:
        ids, mask = enc["input_ids"].to(model.device), enc["attention_mask"].to(model.device)
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        target, tmask = ids[:, 1:], mask[:, 1:].bool() & mask[:, :-1].bool()
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, reduction="none")
        sums.extend((nll * tmask).sum(1).tolist())
        counts.extend(tmask.sum(1).tolist())
    return sums, counts


# Most positions x vocabulary entries one KL pass holds as a float32 tensor (a pass holds three such tensors): 16 MiB
# on a CPU, 256 MiB on a GPU (whose vocabularies reach 150k: a few answers a pass)
KL_ELEMENTS = 2**22
KL_ELEMENTS_GPU = 2**26


@torch.no_grad()
def mean_token_kl(
    policy: PreTrainedModel,
    reference: PreTrainedModel,
    tok,
    questions: list[str],
    answers: list[str],
    batch_size: int = 64,
) -> list[tuple[float, int]]:
    """Per question: (summed KL(policy || reference) over the policy's answer tokens, token count).

    The KL is exact over the vocabulary at each position where the policy produced its answer
    (answer tokens plus the closing EOS), conditioned on the prompt and the answer so far. Only those
    positions are projected onto the vocabulary (``logits_to_keep``), and a pass takes at most
    ``batch_size`` questions and as many as keep its answer positions within ``KL_ELEMENTS`` logits, so
    memory stays bounded at any vocabulary size.
    """
    prompts = chat_prompts(tok, questions)
    texts = [p + " " + a + tok.eos_token for p, a in zip(prompts, answers, strict=True)]
    lengths = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
    plen = [len(tok(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    for r, (n, p) in enumerate(zip(lengths, plen, strict=True)):
        if n <= p:
            raise ValueError(f"question {r}: its answer adds no token to the prompt ({questions[r]!r})")
    vocab = getattr(getattr(policy, "config", None), "vocab_size", None) or len(tok)
    budget = KL_ELEMENTS_GPU if torch.device(policy.device).type == "cuda" else KL_ELEMENTS
    out: list[tuple[float, int]] = []
    side, tok.padding_side = tok.padding_side, "right"
    try:
        for rows in _kl_batches([n - p for n, p in zip(lengths, plen, strict=True)], vocab, batch_size, budget):
            enc = tok([texts[r] for r in rows], return_tensors="pt", padding=True, add_special_tokens=False)
            ids, mask = enc["input_ids"].to(policy.device), enc["attention_mask"].to(policy.device)
            keep = torch.zeros_like(mask, dtype=torch.bool)  # positions that predict answer tokens and EOS
            for i, r in enumerate(rows):
                keep[i, plen[r] - 1 : lengths[r] - 1] = True
            lp = _kept_logits(policy, ids, mask, keep).float().log_softmax(-1)
            diff = _kept_logits(reference, ids, mask, keep).float().log_softmax(-1).neg_().add_(lp)  # lp - lq
            kl = lp.exp_().mul_(diff).sum(-1).tolist()  # one value per kept position, row after row
            start = 0
            for r in rows:
                n = lengths[r] - plen[r]
                out.append((float(sum(kl[start : start + n])), n))
                start += n
    finally:
        tok.padding_side = side
    return out


def _kl_batches(kept: list[int], vocab: int, batch_size: int, budget: int) -> list[list[int]]:
    """Consecutive rows, at most ``batch_size`` a batch, each batch's kept positions times ``vocab`` within
    ``budget`` (a row that alone exceeds it gets a batch of its own)."""
    batches: list[list[int]] = []
    for row, n in enumerate(kept):
        last = batches[-1] if batches else None
        if last and len(last) < batch_size and (sum(kept[r] for r in last) + n) * vocab <= budget:
            last.append(row)
        else:
            batches.append([row])
    return batches


def _kept_logits(model, ids: torch.Tensor, mask: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The logits at the ``keep`` positions, flattened row after row: ``[kept positions, vocab]``. Only those
    positions are projected onto the vocabulary where the model takes ``logits_to_keep`` (transformers' causal LMs
    do); another model's full logits are computed and then indexed (also one that takes the argument but returns
    another shape)."""
    try:
        logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=keep).logits
    except TypeError as exc:
        if "logits_to_keep" not in str(exc):
            raise
    else:
        if logits.dim() == 2 and logits.shape[0] == int(keep.sum()):
            return logits
    # no logits_to_keep, or a model that takes it but reads a mask otherwise: all logits, then the kept positions
    return model(input_ids=ids, attention_mask=mask).logits[keep]
