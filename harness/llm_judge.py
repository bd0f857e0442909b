"""The LLM answer judge: a judge model on any OpenAI-compatible server reads the answers the rules could
not, and its verdict is kept in the record beside the rules' (`correct` stays the rules' verdict).

    settings = JudgeSettings(judge="http://127.0.0.1:8001/v1")        # a URL: the server's one model
    settings = JudgeSettings(judge="gpt-4o-mini", judge_all=True)      # a name: at base_url / $OPENAI_BASE_URL
    info = judge_records(records, settings, echo=print)   # sets each record's llm_judge; returns the manifest's

`harness eval --judge ...` runs it after generation, `harness rescore RUN --judge ...` on a finished run.
Which records: those answered whose rules extracted no answer (`extracted` null), or every answered
record with `judge_all`; the others get `llm_judge: null`. Two methods (harness/judge_prompts.py):
- `mathvista_extraction` (mathvista_testmini): the judge extracts the answer in the form the item's hint
  asks for, and the suite's own scorer scores that answer (normalisation, comparison with the gold);
- `extract_then_judge` (every other suite, MathVerse's procedure): the judge extracts the answer, then
  a second call judges it against the gold (1 or 0).
A judge that finds no answer gives the verdict wrong without a second call. Calls run concurrently
through harness/openai_client.py (retries, timeouts, the key from an environment variable), at
temperature 0, and every answered call is cached (harness/judge_cache.py): a rescore pays only for
prompts never asked before.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from harness.judge_cache import JUDGE_CACHE_SCHEMA_VERSION, JudgeCache, cache_key, prompt_sha256
from harness.judge_prompts import (
    PROMPT_VERSION,
    extraction_messages,
    judgement_messages,
    mathvista_extraction_messages,
    read_extraction,
    read_judgement,
)
from harness.openai_client import ChatClient, ClientSettings, normalized_base_url, stats_summary
from harness.progress import Progress, ProgressMode
from suites import get_suite
from suites.base import Item, ScoringInput, Target
from suites.mathvista import SUITE_NAME as MATHVISTA
from suites.mathvista import official_query

# suite -> method; every suite not named here is judged with the two-step method.
JUDGE_METHODS = {MATHVISTA: "mathvista_extraction"}
DEFAULT_METHOD = "extract_then_judge"


@dataclass(frozen=True)
class JudgeSettings:
    judge: str  # a model name (served at base_url) or a server's base URL (its one model)
    base_url: str | None = None  # for a judge given by name; default $OPENAI_BASE_URL, else OpenAI's
    api_key_env: str = "OPENAI_API_KEY"
    judge_all: bool = False
    max_concurrency: int = 32
    timeout_s: float = 600.0
    max_retries: int = 6
    retry_backoff_s: float = 1.0
    max_tokens: int = 256
    cache_dir: str | None = None  # default: <harness cache>/judge

    @classmethod
    def from_config(cls, cfg: Any) -> JudgeSettings | None:
        """The judge of an EvalConfig (None without one); a judge by name defaults to the openai
        backend's server."""
        if cfg.judge is None:
            return None
        base_url = cfg.judge_base_url or (cfg.base_url if cfg.backend == "openai" else None)
        return cls(judge=cfg.judge, base_url=base_url, api_key_env=cfg.judge_api_key_env, judge_all=cfg.judge_all,
                   max_concurrency=cfg.judge_max_concurrency, timeout_s=cfg.request_timeout_s,
                   max_retries=cfg.max_retries, retry_backoff_s=cfg.retry_backoff_s, cache_dir=cfg.judge_cache)

    def cache_directory(self) -> Path:
        if self.cache_dir:
            return Path(self.cache_dir).expanduser()
        from harness.tiny_model import tiny_model_cache_dir

        return tiny_model_cache_dir() / "judge"


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def method_of(suite: str) -> str:
    return JUDGE_METHODS.get(suite, DEFAULT_METHOD)


def needs_judge(record: dict[str, Any], judge_all: bool) -> bool:
    answered = record.get("response") is not None and record.get("error") is None
    return answered and (judge_all or record.get("extracted") is None)


def judge_question(record: dict[str, Any]) -> str:
    """The question as the judge sees it: MathVista's own zero-shot query (hint, question, choices),
    else the question with its lettered choices."""
    target = record.get("target") or {}
    if record["suite"] == MATHVISTA:
        item = Item(suite=record["suite"], sample_id=record["sample_id"], question=record["question"],
                    gold=record["gold"], answer_type=target.get("answer_type", "text"), choices=record["choices"],
                    unit=target.get("unit"), precision=target.get("precision"))
        query = official_query(item)
        if query:
            return query
    choices = record.get("choices") or []
    lettered = "".join(f"\n{chr(ord('A') + i)}: {c}" for i, c in enumerate(choices))
    return record["question"] + (f"\nChoices:{lettered}" if choices else "")


class _Calls:
    """The pass's calls: answered from the cache where possible, the rest sent concurrently (each
    distinct prompt once), answered ones stored in the cache."""

    def __init__(self, client: ChatClient, cache: JudgeCache, model: str, params: dict[str, Any],
                 max_concurrency: int, progress: ProgressMode = "off",
                 echo: Callable[[str], None] | None = None):
        self.client, self.cache, self.model, self.params = client, cache, model, params
        self.max_concurrency, self.from_cache = max_concurrency, 0
        self.progress, self.echo = progress, echo
        self.replied_models: set[str] = set()

    def run(self, step: str, prompts: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
        """One JudgeCall (run_schema) per prompt, in order."""
        hashes = [prompt_sha256(messages, self.params) for messages in prompts]
        calls: dict[str, dict[str, Any]] = {}
        to_send = {}
        for digest, messages in zip(hashes, prompts, strict=True):
            entry = self.cache.get(cache_key(self.model, digest))
            if entry is not None:
                calls[digest] = _call(step, digest, entry["text"], entry["prompt_tokens"],
                                      entry["completion_tokens"], entry["latency_s"], cached=True)
            elif digest not in to_send:
                to_send[digest] = {"model": self.model, "messages": messages, **self.params}
        self.from_cache += sum(1 for d in hashes if d in calls)
        bodies = {id(body): digest for digest, body in to_send.items()}
        bar = Progress(len(to_send), self.progress, self.echo, label=f"judge ({step})")
        for body, result in self.client.map(list(to_send.values()), self.max_concurrency):
            bar.advance(1)
            digest, reply = bodies[id(body)], result.reply
            if reply is None or not reply.texts:
                calls[digest] = _call(step, digest, None, None, None, round(result.latency_s, 3), cached=False,
                                      error=result.error or "no reply")
                continue
            if reply.model:
                self.replied_models.add(reply.model)
            calls[digest] = _call(step, digest, reply.texts[0], reply.prompt_tokens, reply.completion_tokens,
                                  round(result.latency_s, 3), cached=False)
            self.cache.put({"schema_version": JUDGE_CACHE_SCHEMA_VERSION, "key": cache_key(self.model, digest),
                            "model": self.model, "prompt_sha256": digest, "text": reply.texts[0],
                            "prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
                            "latency_s": round(result.latency_s, 3),
                            "created": datetime.now(UTC).isoformat(timespec="seconds")})
        bar.close()
        return [dict(calls[d]) for d in hashes]


def _call(step: str, digest: str, text: str | None, prompt_tokens: int | None, completion_tokens: int | None,
          latency_s: float | None, cached: bool, error: str | None = None) -> dict[str, Any]:
    return {"step": step, "prompt_sha256": digest, "text": text, "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens, "latency_s": latency_s, "cached": cached, "error": error}


def _target_of(record: dict[str, Any]) -> Target:
    return Target.from_dict({**record["target"], "gold": record["gold"], "choices": record["choices"],
                             "meta": record.get("meta") or {}})


def _scored_by_suite(record: dict[str, Any], answer: str) -> bool:
    """The suite's own scorer on the judge's answer, read as an answer block (region rule `judge`)."""
    score = get_suite(record["suite"]).score(ScoringInput(response=answer, region=answer, region_rule="judge",
                                                          target=_target_of(record)))
    return bool(score.correct)


def resolve_judge(settings: JudgeSettings, client_for: Callable[[str], ChatClient]) -> tuple[ChatClient, str]:
    """(client, judge model): a URL judge is its server's one model; a named one must be served."""
    base_url = normalized_base_url(settings.judge if is_url(settings.judge) else settings.base_url)
    client = client_for(base_url)
    try:
        served = [m["id"] for m in client.list_models()]
        if is_url(settings.judge):
            if len(served) != 1:
                raise ConfigError(f"the judge server at {base_url} serves {len(served)} models "
                                  f"({', '.join(served[:5]) or 'no listing'}); name one: --judge MODEL "
                                  f"--judge-base-url {base_url}")
            return client, served[0]
        if served and settings.judge not in served:
            raise ConfigError(f"the judge server at {base_url} does not serve {settings.judge!r}; it serves: "
                              f"{', '.join(served[:10])}")
        return client, settings.judge
    except BaseException:
        client.close()
        raise


def _client_for(settings: JudgeSettings) -> Callable[[str], ChatClient]:
    def client_for(base_url: str) -> ChatClient:
        return ChatClient(ClientSettings(base_url=base_url, api_key_env=settings.api_key_env,
                                         timeout_s=settings.timeout_s, max_retries=settings.max_retries,
                                         backoff_s=settings.retry_backoff_s,
                                         max_connections=settings.max_concurrency))
    return client_for


def check_judge(settings: JudgeSettings) -> str:
    """The judge model, after checking that its server answers and serves it (BackendError, ConfigError)."""
    client, model = resolve_judge(settings, _client_for(settings))
    client.close()
    return model


def judge_records(records: list[dict[str, Any]], settings: JudgeSettings,
                  echo: Callable[[str], None] | None = None, progress: ProgressMode = "off") -> dict[str, Any]:
    """Judge the records that need it (in place: each record's `llm_judge`); returns the manifest's
    `llm_judge` entry (JudgeInfo). Failed calls leave a verdict of None with the error; never raises
    for them. `progress` shows the calls sent (harness/progress.py's modes)."""
    started = time.perf_counter()
    client, model = resolve_judge(settings, _client_for(settings))
    try:
        cache = JudgeCache.for_model(settings.cache_directory(), model)
        params = {"temperature": 0.0, "max_tokens": settings.max_tokens}
        calls = _Calls(client, cache, model, params, settings.max_concurrency, progress, echo)
        selected = [r for r in records if needs_judge(r, settings.judge_all)]
        for record in records:
            if not needs_judge(record, settings.judge_all):
                record["llm_judge"] = None  # the latest pass says which records the judge looked at
        if echo:
            echo(f"judge {model}: {len(selected)} of {len(records)} record(s) to judge")
        _judge(selected, settings, model, calls)
        requests = stats_summary(client.stats)
    finally:
        client.close()
    info = {"model": model, "served_model": ", ".join(sorted(calls.replied_models)) or None, "base_url": client.settings.base_url,
            "api_key_env": settings.api_key_env, "judge_all": settings.judge_all,
            "methods": {suite: method_of(suite) for suite in sorted({r["suite"] for r in records})},
            "prompt_version": PROMPT_VERSION, "request_params": params, "cache": str(cache.path),
            "requests": requests, "calls_from_cache": calls.from_cache,
            "time": datetime.now(UTC).isoformat(timespec="seconds"), "wall_s": round(time.perf_counter() - started, 3)}
    if echo:
        echo(f"judge {model}: {requests['requests']} call(s) sent ({requests['retries']} retries, "
             f"{requests['failed']} failed), {calls.from_cache} answered from the cache, "
             f"{requests['prompt_tokens'] + requests['completion_tokens']} tokens")
    return info


def _judge(selected: list[dict[str, Any]], settings: JudgeSettings, model: str, calls: _Calls) -> None:
    reason = "all" if settings.judge_all else "no_answer"
    firsts = []
    for record in selected:
        question = judge_question(record)
        if method_of(record["suite"]) == "mathvista_extraction":
            firsts.append(mathvista_extraction_messages(question, record["response"]))
        else:
            firsts.append(extraction_messages(question, record["response"]))
    second: list[tuple[dict[str, Any], str]] = []
    for record, first in zip(selected, calls.run("extract", firsts), strict=True):
        method = method_of(record["suite"])
        verdict = {"model": model, "method": method, "reason": reason, "extracted": None, "correct": None,
                   "calls": [first], "error": first["error"]}
        record["llm_judge"] = verdict
        if first["text"] is None:
            continue
        verdict["extracted"] = read_extraction(first["text"])
        if verdict["extracted"] is None:
            verdict["correct"] = False  # the judge found no answer: wrong, no second call
        elif method == "mathvista_extraction":
            verdict["correct"] = _scored_by_suite(record, verdict["extracted"])
        else:
            second.append((record, verdict["extracted"]))
    prompts = [judgement_messages(judge_question(r), r["gold"], extracted) for r, extracted in second]
    for (record, _), call in zip(second, calls.run("judge", prompts), strict=True):
        verdict = record["llm_judge"]
        verdict["calls"].append(call)
        if call["text"] is None:
            verdict["error"] = call["error"]
            continue
        verdict["correct"] = read_judgement(call["text"])
        if verdict["correct"] is None:
            verdict["error"] = f"the judge's reply holds no verdict (1 or 0): {call['text'][:80]!r}"
