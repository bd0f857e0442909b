"""The report page's own text in English and Chinese. Data (model outputs, names, questions) is never
translated; every static string of the page comes from here.

The page renders in the language passed to build_report and embeds both tables, so its language
switch swaps text in place without reloading (elements carry data-i18n="<key>").
Keys starting with "rw." are the reward calculator's labels (passed to HarnessRewards.mount without
the prefix).
"""

from __future__ import annotations

from core.errors import ConfigError
from harness.checkpoints import CHECKPOINT_FILE, TRAIN_LOG_FILE
from harness.runstore import METRICS_FILE, RECORDS_FILE

LANGS = ("en", "zh")
HTML_LANG = {"en": "en", "zh": "zh-CN"}

# key: (English, Chinese)
_PAIRS: dict[str, tuple[str, str]] = {
    # page frame
    "report.title": ("Evaluation report", "评测报告"),
    "report.baseline": ("Baseline", "基线"),
    "report.candidates": ("Compared with", "对比对象"),
    "report.generated": ("Generated", "生成时间"),
    "report.noscript": ("Sorting, filters and item views need JavaScript; the tables below work without it.",
                        "排序、筛选和逐题查看需要 JavaScript；下面的表格无需 JavaScript 即可阅读。"),
    "report.footer": (("Self-contained page built from run directories only; it loads nothing from the network. "
                      "Model outputs and data are shown as recorded, as plain text."),
                      "本页面完全自包含，仅由运行目录生成，不访问网络。模型输出和数据按原样以纯文本显示。"),
    "lang.label": ("Language", "语言"),
    "nav.runs": ("Runs", "运行"),
    "nav.summary": ("Summary", "总览"),
    "nav.breakdowns": ("Breakdowns", "分类细分"),
    "nav.format": ("Format", "格式"),
    "nav.flips": ("Item flips", "题目翻转"),
    "nav.items": ("Item explorer", "逐题对比"),
    "nav.efficiency": ("Efficiency", "效率"),
    "nav.training": ("Training", "训练"),
    "nav.sweep": ("Checkpoint sweep", "检查点扫描"),
    "nav.rewards": ("Reward calculator", "奖励计算器"),
    "sort.hint": ("Click to sort", "点击排序"),
    # runs and comparability
    "runs.title": ("Runs", "运行"),
    "banner.title": ("These runs are not directly comparable", "这些运行不能直接比较"),
    "banner.intro": ("Differences from the baseline that can move the numbers below:",
                     "与基线的以下差异可能影响下面的数字："),
    "banner.ok": (("Comparable: same suite items, splits, prompt format and generation parameters; "
                  "no recorded train/eval overlap."),
                  "可比较：测试集题目、划分、提示格式和生成参数一致，且没有记录到训练/评测数据重叠。"),
    "col.run": ("Run", "运行"),
    "role.baseline": ("baseline", "基线"),
    "role.candidate": ("candidate", "候选"),
    "col.model": ("Model", "模型"),
    "col.checkpoint": ("Checkpoint", "检查点"),
    "col.model_note": ("Model (backend · dtype)", "模型（后端 · 精度）"),
    "col.prompt_format": ("Prompt format", "提示格式"),
    "col.scoring": ("Scoring", "评分方式"),
    "col.generation": ("Generation", "生成参数"),
    "col.dates": ("Created → finished", "创建 → 完成"),
    "col.commit": ("Harness commit", "评测框架提交"),
    "col.hardware": ("Hardware", "硬件"),
    "runs.dirty": ("uncommitted changes", "有未提交修改"),
    "state.running": ("running: partial numbers", "运行中：数字不完整"),
    "state.unfinished": ("unfinished: partial numbers", "未完成：数字不完整"),
    "state.duplicated": ("duplicated records", "记录重复"),
    "state.error": ("stopped with an error", "因错误停止"),
    # summary
    "summary.title": ("Summary", "总览"),
    "summary.intro": (("Accuracy with its 95% interval. Δ is candidate minus baseline in percentage points on the "
                      "items both runs answered, with a paired bootstrap 95% interval. p is McNemar's exact "
                      "test on the items that flipped; Holm p corrects it for every comparison on this page. "
                      "▲ / ▼ mark changes significant at α = 0.05 after the correction. Accuracy is the run's "
                      "scoring mode (see Runs); the strict and the official-compatible accuracy stand beside it "
                      "with their difference, and No answer is the share of responses from which no answer was "
                      "extracted (abstentions, empty or unreadable responses)."),
                      ("准确率及其 95% 置信区间。Δ 为候选减基线（百分点），基于两次运行都作答的题目，附配对 bootstrap "
                      "95% 区间。p 为对翻转题目做的 McNemar 精确检验；Holm p 对本页所有比较做多重校正。"
                      "▲ / ▼ 表示校正后在 α = 0.05 下显著的变化。准确率按运行的评分方式计算（见运行表）；旁边并列"
                      "严格与官方兼容两种准确率及其差值；未作答为未能提取出答案的回答占比（拒答、空白或无法读取）。")),
    "col.suite": ("Suite", "测试集"),
    "col.n": ("Items", "题数"),
    "col.accuracy": ("Accuracy % [95% CI]", "准确率 % [95% 区间]"),
    "col.format": ("Format %", "格式合规 %"),
    "col.strict_official": ("Strict / official % (Δ)", "严格 / 官方兼容 % (Δ)"),
    "col.no_answer": ("No answer %", "未作答 %"),
    "col.delta": ("Δ pts [95% CI]", "Δ 百分点 [95% 区间]"),
    "col.delta_short": ("Δ pts", "Δ 百分点"),
    "col.fixed": ("Fixed", "修复"),
    "col.broken": ("Broken", "退化"),
    "col.p": ("McNemar p", "McNemar p"),
    "col.p_holm": ("Holm p", "Holm 校正 p"),
    "col.verdict": ("Change", "变化"),
    "verdict.better": ("better", "提升"),
    "verdict.worse": ("worse", "下降"),
    "verdict.ns": ("not significant", "不显著"),
    "verdict.baseline": ("baseline", "基线"),
    "verdict.na": ("no shared items", "无共同题目"),
    # breakdowns
    "breakdowns.title": ("Breakdowns by category", "按类别细分"),
    "breakdowns.intro": (("Accuracy per category, from each run's {metrics_file}; multi-label fields count an item "
                         "under each of its labels. Category deltas are not tested: small categories move by "
                         "chance."),
                         ("各类别准确率，取自各运行的 {metrics_file}；多标签字段中每道题计入其每个标签。类别层面的"
                         "差值未做显著性检验：小类别的波动可能只是偶然。")),
    "breakdowns.none": ("No per-category breakdowns in these runs' metrics.", "这些运行的指标中没有分类细分。"),
    "col.category": ("Category", "类别"),
    # format compliance
    "format.title": ("Format compliance and response length", "格式合规与回答长度"),
    "format.intro": (("Share of responses in the required format, the failure kinds (count per run, change vs "
                     "the baseline), truncation at max_new_tokens and the output length distribution."),
                     ("符合要求格式的回答占比、各类格式问题（每次运行的数量及相对基线的变化）、"
                     "达到 max_new_tokens 的截断率以及输出长度分布。")),
    "format.lengths": ("Output length per response; dotted line: max_new_tokens", "每个回答的输出长度；虚线：max_new_tokens"),
    "col.compliance": ("Compliant %", "合规 %"),
    "col.truncation": ("Truncated %", "截断 %"),
    "col.mean_tokens": ("Mean output tokens", "平均输出 token"),
    "format.na": ("n/a", "不适用"),
    "plot.tokens": ("output tokens", "输出 token 数"),
    "plot.share": ("share of responses", "回答占比"),
    # flips and items
    "flips.title": ("Item flips", "题目翻转"),
    "flips.intro": (("Items whose verdict changed against the baseline (majority over attempts): fixed = wrong → "
                    "right, broken = right → wrong. Every run's response is shown side by side."),
                    ("相对基线判定发生变化的题目（多次尝试取多数）：修复 = 错 → 对，退化 = 对 → 错。"
                    "各运行的回答并排显示。")),
    "filter.run": ("Candidate", "候选运行"),
    "filter.suite": ("Suite", "测试集"),
    "filter.category": ("Category", "类别"),
    "filter.direction": ("Direction", "方向"),
    "filter.search": ("Search question or sample id", "搜索题目或样本编号"),
    "filter.all": ("All", "全部"),
    "dir.fixed": ("fixed (wrong → right)", "修复（错 → 对）"),
    "dir.broken": ("broken (right → wrong)", "退化（对 → 错）"),
    "flips.shown": ("shown", "已显示"),
    "flips.more": ("Show more", "显示更多"),
    "flips.none": ("No flipped items match these filters.", "没有符合筛选条件的翻转题目。"),
    "items.title": ("Same question across runs", "同一题目在各运行中的回答"),
    "items.intro": (("Pick a suite and search by sample id or question text to see every run's response to one "
                    "item."), "选择测试集并按样本编号或题目文字搜索，查看各运行对同一道题的回答。"),
    "items.matches": ("matches", "个匹配"),
    "items.none": ("No item matches.", "没有匹配的题目。"),
    "item.question": ("Question", "题目"),
    "item.choices": ("Choices", "选项"),
    "item.gold": ("Gold answer", "标准答案"),
    "item.extracted": ("Extracted", "提取答案"),
    "item.correct": ("correct", "正确"),
    "item.wrong": ("wrong", "错误"),
    "item.format_ok": ("format ok", "格式合规"),
    "item.format_bad": ("format:", "格式问题："),
    "item.rewards": ("Rewards", "奖励"),
    "item.reward_format": ("format", "格式"),
    "item.reward_correctness": ("correctness", "正确性"),
    "item.reward_total": ("total", "总计"),
    "item.show_response": ("Show response", "展开回答"),
    "item.chars": ("characters", "字符"),
    "item.truncated": ("Cut for this page; the full response is in {records_file}.",
                       "本页已截断，完整回答见 {records_file}。"),
    "item.no_record": ("This run has no record of this item.", "该运行没有这道题的记录。"),
    "item.attempts": ("attempts correct", "次尝试正确"),
    "item.length": ("hit max_new_tokens", "达到 max_new_tokens"),
    "item.error": ("Error", "错误"),
    "item.no_response": ("(no response)", "（无回答）"),
    # efficiency
    "efficiency.title": ("Efficiency", "效率"),
    "efficiency.intro": (("Generation throughput over each run's generate calls (model loading excluded) and peak "
                         "GPU memory over all of its sessions. Numbers from different hardware do not compare."),
                         ("各运行生成调用的吞吐量（不含模型加载）以及所有会话中的 GPU 显存峰值。"
                         "不同硬件上的数字不可直接比较。")),
    "col.samples_s": ("Samples/s", "样本/秒"),
    "col.tokens_s": ("Output tokens/s", "输出 token/秒"),
    "col.lat50": ("Latency p50 s", "延迟 p50 (秒)"),
    "col.lat90": ("Latency p90 s", "延迟 p90 (秒)"),
    "col.wall": ("Generation time s", "生成耗时 (秒)"),
    "col.mem_alloc": ("Peak allocated MiB", "峰值已分配 MiB"),
    "col.mem_reserved": ("Peak reserved MiB", "峰值已预留 MiB"),
    "col.mem_nvml": ("NVML peak MiB", "NVML 峰值 MiB"),
    "col.gpu": ("GPU", "GPU"),
    "col.vs_base": ("vs baseline", "相对基线"),
    # training
    "training.title": ("Training", "训练"),
    "training.intro": (("Curves from each checkpoint's {train_log_file} (solid: GRPO, dashed: GSPO) and the "
                       "accuracy of the evaluations run during training."),
                       "来自各检查点 {train_log_file} 的曲线（实线：GRPO，虚线：GSPO），以及训练期间周期评测的准确率。"),
    "training.none": ("None of these runs evaluates a trained checkpoint.", "这些运行都不是训练检查点的评测。"),
    "training.missing_dir": ("Checkpoint directory not found (moved or deleted), so no training curves:",
                             "找不到检查点目录（已移动或删除），因此没有训练曲线："),
    "training.no_log": ("No {train_log_file} in the checkpoint directory:", "检查点目录中没有 {train_log_file}："),
    "training.on_policy": (("GSPO ran effectively on-policy (one optimisation step per generation batch), where its "
                           "gradient equals GRPO's: differences from a GRPO run are noise, not the algorithm:"),
                           ("GSPO 实际上以同策略方式运行（每个生成批次只做一次优化），此时其梯度与 GRPO 相同："
                           "与 GRPO 运行的差异来自随机性而非算法：")),
    "training.evals": ("Accuracy at periodic evaluations", "周期评测准确率"),
    "training.evals_table": ("Table of the periodic evaluations", "周期评测结果表"),
    "efficiency.memory_note": ("Memory not measured:", "未测量显存："),
    "training.evals_missing": ("Evaluation runs listed in {checkpoint_file} but not found:",
                               "{checkpoint_file} 中列出但未找到的评测运行："),
    "col.algo": ("Algorithm", "算法"),
    "col.engine": ("Engine", "训练引擎"),
    "col.reward_mode": ("Reward mode", "奖励模式"),
    "col.step": ("Step", "步数"),
    "col.world_size": ("Training processes", "训练进程数"),
    "col.global_batch": ("Completions per step (all processes)", "每步生成数（全部进程）"),
    "col.train_dir": ("Checkpoint directory", "检查点目录"),
    "train.reward": ("Reward (mean)", "奖励均值"),
    "train.format_reward": ("Format reward", "格式奖励"),
    "train.correctness_reward": ("Correctness reward", "正确性奖励"),
    "train.completion_length": ("Completion length (tokens)", "生成长度（token）"),
    "train.clipped_ratio": ("Completions cut at the length limit (share)", "达到长度上限的生成占比"),
    "train.clip_ratio": ("Clip ratio (region mean)", "裁剪比例（区域均值）"),
    "train.sequence_ratio_max": ("Largest sequence importance ratio (1: on-policy)", "最大序列重要性比率（1：同策略）"),
    "train.kl": ("KL divergence", "KL 散度"),
    "train.entropy": ("Entropy", "熵"),
    "train.step_time": ("Step time (s)", "单步耗时（秒）"),
    "train.peak_memory": ("Peak GPU memory (MiB)", "GPU 显存峰值（MiB）"),
    "plot.step": ("training step", "训练步数"),
    "plot.accuracy": ("accuracy %", "准确率 %"),
    "plot.no_answer": ("no answer %", "未作答 %"),
    "plot.format": ("format compliance %", "格式合规 %"),
    # checkpoint sweep
    "sweep.title": ("Checkpoint sweep", "检查点扫描"),
    "sweep.intro": (("The saved steps of a training run evaluated by harness sweep: every step on the first items "
                     "of each suite (solid), then the best of them on the whole suites (dashed); each point is an "
                     "ordinary run directory."),
                    ("harness sweep 对训练保存的各步检查点的评测：先在每个测试集的前若干题上评测每一步（实线），"
                     "再在完整测试集上评测其中最好的几步（虚线）；每个点都是一个普通的运行目录。")),
    "sweep.none": ("None of these runs belongs to a checkpoint sweep (harness sweep).",
                   "这些运行都不属于检查点扫描（harness sweep）。"),
    "sweep.subset": ("every step, first items", "每一步，前若干题"),
    "sweep.full": ("best steps, whole suites", "最好的几步，完整测试集"),
    "sweep.settings": ("Settings:", "设置："),
    "sweep.table": ("Table of the sweep", "扫描结果表"),
    "sweep.pending": ("Runs listed in the sweep but not finished (run harness sweep again to finish them):",
                      "扫描中列出但尚未完成的运行（再次运行 harness sweep 即可完成）："),
    "col.sweep_stage": ("Stage", "阶段"),
    "col.run_dir": ("Run directory", "运行目录"),
    "col.accuracy_pct": ("Accuracy %", "准确率 %"),
    # reward calculator
    "rewards.title": ("Reward calculator", "奖励计算器"),
    "rewards.intro": (("Paste a response to see the rewards it earns under the recipe reward mode (the Unsloth "
                       "notebook's string rule: correctness 2.0 for an exact match, 1.5 for the same number), "
                       "computed in the page. In the suite mode, the trainer's default, correctness is 2.0 exactly "
                       "when the suite's scorer marks the response correct; that rule lives only in the scorers, "
                       "so the page shows each item's stored verdict and rewards in the item explorer instead of "
                       "recomputing them."),
                      ("粘贴一个回答，查看它在 recipe 奖励模式（Unsloth 笔记本的字符串规则：完全一致得 2.0，数值相同得 1.5）"
                       "下获得的奖励，在页面内计算。在训练器默认的 suite 模式下，当测试集评分器判定回答正确时正确性奖励为 "
                       "2.0；该规则只存在于评分器中，因此页面不重新计算，而是在逐题浏览中显示每道题保存的判定和奖励。")),
    "rewards.modes": ("Reward modes of these runs and their checkpoints:", "这些运行及其检查点的奖励模式："),
    "rewards.suite_mode": (("These runs use the suite reward mode: their correctness rewards are the scorers' "
                            "verdicts shown per item in the item explorer; the calculator's correctness reward "
                            "applies to the recipe mode only."),
                           ("这些运行使用 suite 奖励模式：正确性奖励就是逐题浏览中显示的评分器判定；"
                            "计算器的正确性奖励只适用于 recipe 模式。")),
    "rw.completion": ("Completion", "模型输出"),
    "rw.gold": ("Gold answer", "标准答案"),
    "rw.format": ("Prompt format", "提示格式"),
    "rw.choices": ("Choices, one per line (multi-choice items only)", "选项，每行一个（仅限选择题）"),
    "rw.formatReward": ("Format reward", "格式奖励"),
    "rw.correctnessReward": ("Correctness reward (recipe mode)", "正确性奖励（recipe 模式）"),
    "rw.total": ("Total", "总奖励"),
    "rw.failures": ("Format failures", "格式问题"),
    "rw.extracted": ("Answer compared", "用于比较的答案"),
    "rw.none": ("none", "无"),
    "rw.notApplicable": ("n/a", "不适用"),
    "rw.noAnswer": ("(no single answer: correctness 0)", "（没有唯一答案：正确性为 0）"),
    "rw.nonTagNote": (("Without tags the suite's scorer extracts the answer; here the last \\boxed{} (else the "
                      "whole completion) stands in for it."),
                      "不使用标签时由测试集的评分器提取答案；这里用最后一个 \\boxed{}（否则用整个输出）代替。"),
    "rewards.missing": ("The reward calculator script is not available in this build.",
                        "此版本中没有奖励计算器脚本。"),
}

# File names in the text come from the modules that own the files.
_FILE_NAMES = {"{metrics_file}": METRICS_FILE, "{records_file}": RECORDS_FILE, "{train_log_file}": TRAIN_LOG_FILE,
               "{checkpoint_file}": CHECKPOINT_FILE}


def _with_file_names(string: str) -> str:
    for placeholder, name in _FILE_NAMES.items():
        string = string.replace(placeholder, name)
    return string


STRINGS: dict[str, dict[str, str]] = {
    "en": {key: _with_file_names(pair[0]) for key, pair in _PAIRS.items()},
    "zh": {key: _with_file_names(pair[1]) for key, pair in _PAIRS.items()},
}


def text(key: str, lang: str = "en") -> str:
    """The page string for key in lang (a KeyError for an unknown key: every string is listed above)."""
    return STRINGS[lang][key]


def check_lang(lang: str) -> str:
    if lang not in LANGS:
        raise ConfigError(f"language must be one of {', '.join(LANGS)}, got {lang!r}")
    return lang
