"""The bottom layer: what the suites, the evaluation engine, the trainers and the reports all share.

- `core.errors`: the one exception hierarchy (`HarnessError` and its kinds);
- `core.answers`: answer-string helpers (numbers, `\\boxed{}`) for the suites' scorers;
- `core.answer_cues`: the answer cues every suite shares ("The answer is:", "答案是"), numbers written
  as words, abstentions;
- `core.claims`: answers stated as sentences (a restated yes/no question, a choice in other words);
- `core.formats`: the prompt formats, the answer region of a response, format compliance and rewards.

It imports nothing else from the project, so `suites` can use it without loading the engine:
`harness` (whose `__init__` is the public API and loads the runner) sits above the suites.
"""
