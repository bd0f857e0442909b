"""The run directory's formats as types: a record, the manifest and the metrics file. harness/runstore.py
reads and writes them (and alone knows the file names); docs/run-directory.md documents every key of
these types, and tests/test_docs.py checks that it does.

    from harness.run_schema import Record, record_keys
    record_keys()    # ("suite", "sample_id", "attempt", "question", ...): every key a record carries

The manifest's schema_version covers the records too (a record has no version of its own); the metrics
file carries its own. Files of an older version still read: harness/runstore.py upgrades them as it
reads (OLDEST_READABLE says how far back).
"""

# No `from __future__ import annotations`: on Python 3.11 it hides NotRequired from TypedDict.
from typing import Any, Literal, NotRequired, TypedDict

# 2: records say whether an answer was extracted and carry both verdicts (strict, official); the
#    manifest names the scoring mode; the metrics add accuracy_strict, accuracy_official, no_answer_rate.
MANIFEST_SCHEMA_VERSION = 2
METRICS_SCHEMA_VERSION = 2
OLDEST_READABLE = 1  # version 1 files are upgraded on reading (see harness/runstore.py)


# --- the records: one JSON line per sample and attempt ----------------------------------------------
class RecordTarget(TypedDict):
    answer_type: str
    unit: str | None
    precision: int | None


class RecordRewards(TypedDict):
    # how correctness was rewarded (core.formats.REWARD_MODES); absent in runs written before the
    # modes existed, which used the recipe's rule
    mode: NotRequired[Literal["suite", "recipe"]]
    format: float | None  # None for prompt formats without tags
    correctness: float
    total: float | None


class ExternalVerdict(TypedDict):
    metric: str | None  # the other tool's per-sample metric, e.g. lmms-eval's "exact_match"
    value: float | None
    correct: bool | None  # None when the value is not a 0/1 verdict
    extracted: str | None


class ExternalVerdicts(TypedDict):
    """The verdicts of the tool an imported run came from (harness/lmms_eval_import.py)."""

    source: str  # "lmms-eval"
    task: str
    doc_id: int
    scores: dict[str, ExternalVerdict]  # "lmms_eval", or "lmms_eval:<filter>" per filter
class JudgeCall(TypedDict):
    """One call to the LLM judge behind a verdict (harness/llm_judge.py)."""

    step: Literal["extract", "judge"]  # extract the answer; judge it against the gold (two-step method)
    prompt_sha256: str  # with the judge model, the key of the judge cache
    text: str | None  # the judge's raw reply
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_s: float | None  # of the call that produced the reply (a cached reply took none now)
    cached: bool  # answered from the judge cache in the latest judge pass
    error: str | None


class LlmJudgeVerdict(TypedDict):
    model: str  # the judge model
    method: Literal["mathvista_extraction", "extract_then_judge"]
    reason: Literal["no_answer", "all"]  # judged because the rules extracted nothing, or --judge-all
    extracted: str | None  # the answer the judge read from the response (None: it found none)
    correct: bool | None  # the judge's verdict; None when a call failed
    calls: list[JudgeCall]
    error: str | None


class Record(TypedDict):
    suite: str
    sample_id: str
    attempt: int  # 0 .. n-1
    question: str
    choices: list[str] | None
    gold: str
    image: str | None  # thumbnail file name under images/
    prompt_sha256: str | None
    response: str | None  # None when the sample failed before generation
    extracted: str | None  # None: no answer (nothing extracted, an abstention, an empty response)
    extractor: str
    answered: bool  # an answer was extracted
    correct: bool  # the verdict of the run's scoring mode (the manifest's `scoring`)
    correct_strict: bool  # the harness's own verdict
    correct_official: bool | None  # the official-compatible verdict; None in a version 1 run until rescored
    scores: dict[str, dict[str, Any]]  # side-by-side extractions: name -> {extracted, correct, ...}
    rewards: RecordRewards
    format_ok: bool | None
    format_failures: list[str]
    n_prompt_tokens: int | None
    n_output_tokens: int | None
    finish_reason: Literal["stop", "length"] | None
    latency_s: float | None  # batch backend: the batch's generate call; streaming backend: the request's
    ttft_s: float | None  # time to first token (streaming backends that measure it)
    request_latency_s: float | None  # submission to finish (streaming backends)
    batch: str | None  # "<session>-<batch>", or "<session>-stream"
    error: str | None
    request_failed: bool  # the backend gave up on the request (a server refusing it): resume resends it
    llm_judge: LlmJudgeVerdict | None  # the LLM judge's verdict beside the rules' (`correct`), when judged
    target: RecordTarget
    meta: dict[str, Any]
    external: NotRequired[ExternalVerdicts]  # an imported run: the other tool's verdict on this response


def record_keys() -> tuple[str, ...]:
    """Every key every record carries, in file order (`external` only imported records carry)."""
    return tuple(k for k in Record.__annotations__ if k in Record.__required_keys__)


# --- the manifest -----------------------------------------------------------------------------------
class RunErrorInfo(TypedDict):
    type: str
    message: str
    traceback: str


class Repair(TypedDict):
    time: str
    torn_bytes: int
    duplicates_dropped: int
    failed_requests_resent: NotRequired[int]  # records of failed requests removed to be sent again


class ModelInfo(TypedDict):
    id: str
    revision: str | None
    adapter: str | None
    dtype: str | None
    quantization: str | None
    # reported by the backend once the model is loaded
    model: NotRequired[str]  # the model as the backend was given it
    base_model: NotRequired[str]
    device: NotRequired[str]
    n_parameters: NotRequired[int | None]
    load_time_s: NotRequired[float]
    generation_defaults: NotRequired[dict[str, Any]]
    script_sha256: NotRequired[str]  # the scripted backend: sha256 of its script file
    # the vllm backend's own facts
    lora: NotRequired[dict[str, Any] | None]  # {mode: lora|merged, rank, applied modules, ...}
    vllm_version: NotRequired[str]
    engine_options: NotRequired[dict[str, Any]]
    # the openai backend's own facts
    served_model: NotRequired[str | None]  # the model name in the server's replies (else its listing)
    server: NotRequired[dict[str, Any]]  # {base_url, models, owned_by, max_model_len}
    api_key_env: NotRequired[str]  # the variable the key was read from (the key itself is never written)
    api_key_sent: NotRequired[bool]
    request_params: NotRequired[dict[str, Any] | None]  # the request's fields besides the messages
    client: NotRequired[dict[str, Any]]  # {timeout_s, max_retries, retry_backoff_s, max_concurrency}
    requests: NotRequired[dict[str, Any]]  # {requests, retries, retry_causes, failed, prompt_tokens, ...}


class Generation(TypedDict):
    max_new_tokens: int | None  # None: an imported run whose log does not say
    temperature: float
    top_p: float
    top_k: int
    n: int
    seed: int
    ignore_eos: NotRequired[bool]  # benchmarks: exactly max_new_tokens, end-of-sequence ignored


class SuiteShard(TypedDict):
    """A sharded run's share of a suite (harness/sharding.py), and the whole suite it was cut from."""

    index: int  # K of --shard K/N
    count: int  # N
    n_items: int  # the whole suite's
    content_sha256: str  # the whole suite's
    item_ids: list[str]  # the whole suite's sample ids, in suite order


class SuiteEntry(TypedDict):
    name: str
    version: str
    split: str
    source: str
    variant: str | None
    image_size: list[int] | None
    n_items: int
    content_sha256: str
    shard: NotRequired[SuiteShard]


class CheckpointEntry(TypedDict):
    """The manifest's `checkpoint`: the evaluated model is a trained checkpoint."""

    dir: str  # the training directory (with the training log)
    path: str
    algo: str | None
    engine: str | None
    base_model: str | None
    step: int | None
    effectively_on_policy: bool | None
    reward_mode: NotRequired[str]  # how training rewarded correctness: suite or recipe
    world_size: NotRequired[int]  # training processes (1 for checkpoints older than multi-process training)
    global_batch_size: NotRequired[int | None]  # completions per optimizer step over them; None when not recorded
    overlap: dict[str, Any] | None  # {n, suites: {suite: [sample ids]}}
    fingerprints: bool


class Hardware(TypedDict, total=False):
    platform: str
    cpu_model: str | None
    cpu_count: int | None
    ram_gib: float | None
    gpu_name: str | None
    gpu_count: int
    gpu_memory_mib: float | None
    driver_version: str | None
    cuda_version: str | None


class RayReplicaResources(TypedDict):
    num_cpus: float
    num_gpus: float


class RaySession(TypedDict):
    """A session spread over a Ray cluster (harness/ray_pool.py): the replicas and the retries."""

    version: str  # Ray's
    address: str  # "local" (a cluster started by the run) or the address given
    replicas: int
    replica_resources: RayReplicaResources  # what each replica reserved
    chunk_size: int  # requests sent to a replica at a time
    nodes: int  # cluster nodes the replicas ran on
    worker_deaths: int  # replicas whose worker died during the session
    chunks_retried: int  # chunks of requests sent again to another replica after a death
    requests_retried: int
    replicas_restarted: int  # replicas started anew in place of dead ones


class Session(TypedDict):
    started: str
    finished: str | None
    n_records: int
    memory: dict[str, Any] | None  # labelled peaks (torch, NVML, engine figures) or a note
    # seconds (harness/run_session.py says what each counts); absent in runs written before them
    load_time_s: NotRequired[float | None]
    prepare_s: NotRequired[float]
    generation_s: NotRequired[float]
    scoring_s: NotRequired[float]
    writing_s: NotRequired[float]
    wall_s: NotRequired[float]
    streamed: NotRequired[bool]
    shard: NotRequired[str]  # a merged run: "K/N", the shard whose session it was
    ray: NotRequired[RaySession]  # the session ran on a Ray cluster


class Measurements(TypedDict):
    sessions: list[Session]


class ImportedTask(TypedDict):
    suite: str
    split: str
    samples_file: str
    samples_sha256: str
    n_docs: int
    filters: list[str]
    version: Any  # the task's version in the results file
    results: dict[str, Any] | None  # the tool's aggregate numbers for the task, as its results file has them
    generation_kwargs: dict[str, Any] | None


class ImportedFrom(TypedDict):
    """The manifest's `imported`: the run was read from another tool's logs (`harness import`)."""

    tool: str  # "lmms-eval"
    version: str | None  # as its results file gives it (lmms_eval_version)
    git_hash: str | None
    date: str
    model: str | None  # the tool's model type, e.g. "qwen2_5_vl"
    model_args: Any
    gen_kwargs: Any
    limit: Any
    results_file: str | None
    tasks: dict[str, ImportedTask]
class JudgeInfo(TypedDict):
    """The manifest's `llm_judge`: the latest judge pass over the run's records."""

    model: str
    served_model: str | None  # the model name in the judge server's replies
    base_url: str
    api_key_env: str  # the variable the key was read from (the key itself is never written)
    judge_all: bool
    methods: dict[str, str]  # suite -> method
    prompt_version: str
    request_params: dict[str, Any]  # temperature, max_tokens
    cache: str  # the judge cache file
    requests: dict[str, Any]  # this pass's counters: requests, retries, failed, tokens
    calls_from_cache: int
    time: str
    wall_s: float


class MergedShard(TypedDict):
    """One entry of a merged run's `shards` (harness/merge.py): where a share came from."""

    index: int
    count: int
    path: str
    run_id: str
    created: str
    finished: str | None
    harness: dict[str, Any]
    hardware: Hardware


class Manifest(TypedDict):
    schema_version: int
    run_id: str
    created: str
    finished: str | None
    status: Literal["running", "finished", "error"]
    error: RunErrorInfo | None
    repairs: NotRequired[list[Repair]]
    harness: dict[str, Any]  # {commit, dirty}
    model: ModelInfo
    backend: str
    prompt_format: str
    scoring: Literal["strict", "official"]  # which verdict `correct` and `accuracy` are
    generation: Generation
    seed: int
    suites: list[SuiteEntry]
    config: dict[str, Any]  # the EvalConfig fields
    checkpoint: CheckpointEntry | None
    packages: dict[str, str | None]
    hardware: Hardware
    measurements: Measurements
    imported: NotRequired[ImportedFrom]
    llm_judge: NotRequired[JudgeInfo]
    shards: NotRequired[list[MergedShard]]  # a run merged from shards (harness merge)


# --- the metrics ------------------------------------------------------------------------------------
class CategoryAccuracy(TypedDict):
    accuracy: float
    n: int


class JudgeMetrics(TypedDict):
    """A suite's `llm_judge` (harness/judge_metrics.py): the judge beside the rules."""

    judged: int  # records the judge looked at
    verdicts: int  # of those, the ones it gave a verdict on (its calls did not fail)
    accuracy: float | None  # the judge's verdict where it gave one, the rules' elsewhere (avg@n)
    agreement: float | None  # share of verdicts equal to the rules' `correct`
    rule_right_judge_wrong: int
    rule_wrong_judge_right: int
    calls: int
    calls_from_cache: int  # in the latest judge pass
    prompt_tokens: int  # over the calls behind the verdicts (cached ones counted once, when they were paid)
    completion_tokens: int
    latency_s: float  # summed over those calls


class SuiteMetrics(TypedDict):
    n: int
    n_records: int
    attempts_per_item: int
    accuracy: float | None  # under the run's scoring mode
    accuracy_ci95: list[float]
    accuracy_strict: float | None
    accuracy_official: float | None  # None where a record has no official verdict (a version 1 run)
    no_answer_rate: float | None  # share of generated records without an extracted answer
    format_compliance: float | None
    format_failures: dict[str, int]
    truncation_rate: float | None
    mean_output_tokens: float | None
    errors: int
    rewards_mean: dict[str, float | None]
    variants: dict[str, CategoryAccuracy]
    by: dict[str, dict[str, CategoryAccuracy]]
    llm_judge: NotRequired[JudgeMetrics]  # present when a judge pass looked at some record


class SuiteCompleteness(TypedDict):
    items_expected: int
    items_present: int
    records_expected: int
    records_present: int
    duplicated: int
    errored: int


class Completeness(SuiteCompleteness):
    complete: bool
    suites: dict[str, SuiteCompleteness]


class Throughput(TypedDict):
    wall_s: float
    samples_per_s: float | None
    output_tokens_per_s: float | None
    prompt_tokens_per_s: float | None
    total_tokens_per_s: float | None
    output_tokens: int
    prompt_tokens: int
    latency_s_p50: float | None
    latency_s_p90: float | None
    latency_s_p99: float | None
    ttft_s_p50: float | None
    ttft_s_p90: float | None
    ttft_s_p99: float | None
    tpot_s_p50: float | None
    tpot_s_p90: float | None
    tpot_s_p99: float | None
    note: str


class Timings(TypedDict):
    load_time_s: float | None
    prepare_s: float | None
    generation_s: float | None
    scoring_s: float | None
    writing_s: float | None
    wall_s: float | None
    sessions: int


class Memory(TypedDict):
    peak_allocated_mib: float | None
    peak_reserved_mib: float | None
    nvml_peak_used_mib: float | None
    # the vllm backend's figures, when it ran
    nvml_used_over_baseline_mib: NotRequired[float | None]
    nvml_baseline_used_mib: NotRequired[float | None]
    vllm_weights_gib: NotRequired[float | None]
    vllm_kv_cache_gib: NotRequired[float | None]
    kv_cache_peak_usage: NotRequired[float | None]
    note: NotRequired[str]


class Metrics(TypedDict):
    schema_version: int
    run_id: str | None
    scoring: Literal["strict", "official"]
    completeness: Completeness
    suites: dict[str, SuiteMetrics]
    throughput: Throughput
    timings: Timings
    memory: Memory
    rescored: NotRequired[str]  # when `harness rescore` recomputed it
