/* Reward calculator: the training rewards of core/formats.py (format failures, format reward,
 * correctness reward, total) and the number parsing of core/answers.py, recomputed in the browser.
 * Only the `recipe` reward mode: in the `suite` mode (the trainer's default) correctness is the suite
 * scorer's verdict, a rule that lives in the scorers alone; the page shows stored verdicts for it.
 *
 * tests/test_reward_calculator.py runs this file in headless Chromium on every case of
 * tests/fixtures/reward_cases.json and requires the results to equal Python's, so a change to the
 * Python rules must be mirrored here. Plain ES2017, no modules: the report page inlines it and calls
 * HarnessRewards.mount(element, labels). Strings are Python `str`s on the other side, so the places
 * where JavaScript semantics differ (Unicode whitespace, code points vs UTF-16 units, what float()
 * accepts) are spelled out by hand instead of left to JS built-ins; see the comments marked "Python:".
 */
(function (root) {
  "use strict";

  var PROMPT_FORMATS = {
    "reasoning-solution": {
      name: "reasoning-solution",
      reasoningTags: ["<REASONING>", "</REASONING>"],
      answerTags: ["<SOLUTION>", "</SOLUTION>"],
      description: "The Unsloth vision-RL recipe's tags: <REASONING>...</REASONING><SOLUTION>...</SOLUTION>."
    },
    "think-answer": {
      name: "think-answer",
      reasoningTags: ["<think>", "</think>"],
      answerTags: ["<answer>", "</answer>"],
      description: "R1-style tags: <think>...</think><answer>...</answer>."
    },
    "boxed": {
      name: "boxed", reasoningTags: null, answerTags: null,
      description: "Free reasoning with the final answer in \\boxed{}."
    },
    "official": {
      name: "official", reasoningTags: null, answerTags: null,
      description: "The data set's own query (MathVista `query`, MathVerse `query_cot`), unchanged."
    }
  };

  var FAILURE_KINDS = [
    "missing_reasoning", "missing_answer", "duplicated_reasoning", "duplicated_answer",
    "out_of_order", "unclosed", "empty_reasoning", "empty_answer", "degenerate"
  ];

  var DEFAULT_REWARD_WEIGHTS = { format: 0.3, correctness: 1.0 };

  // Python: str.isspace(), str.strip() and re's \s all use this set. JS \s and trim() differ: they
  // lack \x1c-\x1f and \x85 and add \ufeff (a BOM is not whitespace to Python).
  var PY_WHITESPACE = [
    0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680,
    0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a,
    0x2028, 0x2029, 0x202f, 0x205f, 0x3000
  ];

  // Python: float() reads any Unicode decimal digit ("４２" and "٤٢" are 42.0). These are the code
  // points of every digit zero (unicodedata.decimal(c) == 0, Python 3.11 / Unicode 14); digits one to
  // nine follow each zero contiguously. Chromium's own Unicode tables may be newer, so not /\p{Nd}/u.
  var DIGIT_ZEROS = [
    0x30, 0x660, 0x6f0, 0x7c0, 0x966, 0x9e6, 0xa66, 0xae6, 0xb66, 0xbe6, 0xc66, 0xce6, 0xd66,
    0xde6, 0xe50, 0xed0, 0xf20, 0x1040, 0x1090, 0x17e0, 0x1810, 0x1946, 0x19d0, 0x1a80, 0x1a90,
    0x1b50, 0x1bb0, 0x1c40, 0x1c50, 0xa620, 0xa8d0, 0xa900, 0xa9d0, 0xa9f0, 0xaa50, 0xabf0,
    0xff10, 0x104a0, 0x10d30, 0x11066, 0x110f0, 0x11136, 0x111d0, 0x112f0, 0x11450, 0x114d0,
    0x11650, 0x116c0, 0x11730, 0x118e0, 0x11950, 0x11c50, 0x11d50, 0x11da0, 0x16a60, 0x16ac0,
    0x16b50, 0x1d7ce, 0x1d7d8, 0x1d7e2, 0x1d7ec, 0x1d7f6, 0x1e140, 0x1e2f0, 0x1e950, 0x1fbf0
  ];

  // Python float() syntax once digits and spaces are ASCII: sign, digits with single underscores
  // between them (PEP 515), optional fraction and exponent. inf/nan parse in Python but to_float
  // drops non-finite values, so not accepting them here gives the same None.
  var FLOAT_SYNTAX = /^[+-]?(?:[0-9](?:_?[0-9])*(?:\.(?:[0-9](?:_?[0-9])*)?)?|\.[0-9](?:_?[0-9])*)(?:[eE][+-]?[0-9](?:_?[0-9])*)?$/;

  function isPySpace(codeUnit) {
    return PY_WHITESPACE.indexOf(codeUnit) >= 0;
  }

  // Python whitespace is all in the BMP and no surrogate, so walking UTF-16 units is safe here.
  function pyStrip(s) {
    var start = 0;
    var end = s.length;
    while (start < end && isPySpace(s.charCodeAt(start))) start++;
    while (end > start && isPySpace(s.charCodeAt(end - 1))) end--;
    return s.slice(start, end);
  }

  // Python: len() counts code points; JS .length counts UTF-16 units (an emoji is 2).
  function codePointLength(s) {
    return Array.from(s).length;
  }

  // Python str.replace(old, "") and str.count(sub): one left-to-right pass, no overlaps; split does
  // the same (String.prototype.replaceAll is ES2021).
  function removeAll(s, sub) {
    return s.split(sub).join("");
  }

  function countOf(s, sub) {
    return s.split(sub).length - 1;
  }

  function decimalDigit(codePoint) {
    for (var i = 0; i < DIGIT_ZEROS.length; i++) {
      if (codePoint >= DIGIT_ZEROS[i] && codePoint < DIGIT_ZEROS[i] + 10) return codePoint - DIGIT_ZEROS[i];
    }
    return -1;
  }

  // Python float(str): non-ASCII whitespace becomes a space and non-ASCII decimal digits their ASCII
  // digit (anything else non-ASCII is an error), then ASCII whitespace " \t\n\v\f\r" is stripped from
  // both ends (not \x1c-\x1f: those stay and fail), then the syntax above. Returns null when Python
  // raises ValueError or the value is not finite ("1e400" is inf in both languages).
  function pythonFloat(text) {
    var ascii = "";
    var chars = Array.from(text);
    for (var i = 0; i < chars.length; i++) {
      var cp = chars[i].codePointAt(0);
      if (cp < 128) {
        ascii += chars[i];
      } else if (isPySpace(cp)) {
        ascii += " ";
      } else {
        var digit = decimalDigit(cp);
        if (digit < 0) return null;
        ascii += String(digit);
      }
    }
    ascii = ascii.replace(/^[ \t\n\v\f\r]+/, "").replace(/[ \t\n\v\f\r]+$/, "");
    if (!FLOAT_SYNTAX.test(ascii)) return null;
    // Number() on a plain decimal literal rounds correctly, as Python's float() does.
    var value = Number(removeAll(ascii, "_"));
    return isFinite(value) ? value : null;
  }

  // core.answers.to_float: only the ASCII space is removed inside; other spaces are left to float().
  function toFloat(s) {
    if (s === null || s === undefined) return null;
    var t = removeAll(removeAll(removeAll(pyStrip(s), ","), "$"), " ");
    t = t.replace(/\.+$/, "");  // rstrip(".")
    if (t.slice(-1) === "%") t = t.slice(0, -1);  // removesuffix("%"): one only
    return pythonFloat(t);
  }

  // math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9), with CPython's operations in its order.
  function numbersEqual(a, b) {
    if (a === b) return true;
    // Python: whole numbers must match exactly (float.is_integer is false for inf and nan too).
    if (Number.isInteger(a) && Number.isInteger(b)) return false;
    if (!isFinite(a) || !isFinite(b)) return false;
    var diff = Math.abs(b - a);
    return diff <= Math.abs(1e-6 * b) || diff <= Math.abs(1e-6 * a) || diff <= 1e-9;
  }

  // core.answers.boxed_contents: every \boxed{...} / \fbox{...} with balanced braces. Python's
  // re.finditer resumes right after the matched "{", so a box nested in a box is found too.
  function boxedContents(text) {
    var out = [];
    var pos = 0;
    while (pos < text.length) {
      var boxed = text.indexOf("\\boxed", pos);
      var fbox = text.indexOf("\\fbox", pos);
      var start = boxed < 0 ? fbox : (fbox < 0 ? boxed : Math.min(boxed, fbox));
      if (start < 0) break;
      var i = start + (start === boxed ? 6 : 5);
      while (i < text.length && isPySpace(text.charCodeAt(i))) i++;  // Python: \s*
      if (text.charAt(i) !== "{") {
        pos = start + 1;
        continue;
      }
      var open = i + 1;
      var depth = 1;
      var j = open;
      while (j < text.length && depth) {
        var ch = text.charAt(j);
        if (ch === "{") depth++;
        else if (ch === "}") depth--;
        j++;
      }
      if (depth === 0) out.push(text.slice(open, j - 1));
      pos = open;
    }
    return out;
  }

  function lastBoxed(text) {
    var found = boxedContents(text);
    return found.length ? found[found.length - 1] : null;
  }

  // core.formats.blocks: re.findall(open(.*?)close, re.DOTALL): leftmost open, nearest close.
  function blocks(text, tags) {
    var out = [];
    var pos = 0;
    for (;;) {
      var start = text.indexOf(tags[0], pos);
      if (start < 0) break;
      var end = text.indexOf(tags[1], start + tags[0].length);
      if (end < 0) break;
      out.push(text.slice(start + tags[0].length, end));
      pos = end + tags[1].length;
    }
    return out;
  }

  function getFormat(formatName) {
    var fmt = Object.prototype.hasOwnProperty.call(PROMPT_FORMATS, formatName) ? PROMPT_FORMATS[formatName] : null;
    if (!fmt) throw new Error("unknown prompt format " + JSON.stringify(formatName));
    return fmt;
  }

  // core.formats.answer_region -> {region, rule}
  function answerRegion(response, formatName) {
    var fmt = getFormat(formatName);
    if (fmt.answerTags) {
      var found = blocks(response, fmt.answerTags);
      if (found.length) return { region: pyStrip(found[found.length - 1]), rule: "answer_block" };
    }
    var boxed = lastBoxed(response);
    if (boxed !== null) return { region: pyStrip(boxed), rule: "boxed" };
    return { region: response, rule: "response" };
  }

  function isDegenerate(text) {
    if (!text) return false;
    var removed = removeAll(removeAll(text, "addCriterion"), "\n");
    var n = codePointLength(text);
    return (n - codePointLength(removed)) / n >= 0.5;
  }

  function formatFailures(response, formatName) {
    var fmt = getFormat(formatName);
    if (!fmt.reasoningTags || !fmt.answerTags) {
      if (fmt.name !== "boxed") return null;
      var boxedFails = lastBoxed(response) !== null ? [] : ["missing_answer"];
      return isDegenerate(response) ? boxedFails.concat(["degenerate"]) : boxedFails;
    }
    var fails = [];
    var firstOpen = {};
    var kinds = [["reasoning", fmt.reasoningTags], ["answer", fmt.answerTags]];
    for (var k = 0; k < kinds.length; k++) {
      var kind = kinds[k][0];
      var tags = kinds[k][1];
      var nOpen = countOf(response, tags[0]);
      var nClose = countOf(response, tags[1]);
      var closed = blocks(response, tags);
      if (nOpen === 0 && nClose === 0) fails.push("missing_" + kind);
      else if (nOpen > 1 || nClose > 1) fails.push("duplicated_" + kind);
      if (nOpen > nClose) fails.push("unclosed");
      if (closed.length === 1 && !pyStrip(closed[0])) fails.push("empty_" + kind);
      // Python compares str.find positions; UTF-16 offsets keep the same order.
      if (nOpen) firstOpen[kind] = response.indexOf(tags[0]);
    }
    if ("reasoning" in firstOpen && "answer" in firstOpen && firstOpen.answer < firstOpen.reasoning) {
      fails.push("out_of_order");
    }
    if (isDegenerate(response)) fails.push("degenerate");
    // sorted(set(fails), key=FAILURE_KINDS.index)
    return FAILURE_KINDS.filter(function (f) { return fails.indexOf(f) >= 0; });
  }

  function formatReward(response, formatName) {
    var fmt = getFormat(formatName);
    if (!fmt.reasoningTags || !fmt.answerTags) {
      throw new Error("prompt format '" + fmt.name + "' has no tags: the format reward is undefined");
    }
    var score = 0.0;
    score += blocks(response, fmt.reasoningTags).length === 1 ? 1.0 : 0.0;
    score += blocks(response, fmt.answerTags).length === 1 ? 1.0 : 0.0;
    if (isDegenerate(response)) score -= 2.0;
    return score;
  }

  // The answer string that the correctness reward compares, or null (reward 0). Tag formats: the
  // single answer block with "\n" removed (no strip, as the recipe). Other formats: Python takes the
  // suite scorer's extracted answer; `extracted` passes one, and when it is undefined the answer
  // region (last \boxed{}, else the whole response) stands in, since suite extractors stay in Python.
  function comparedAnswer(response, formatName, extracted) {
    var fmt = getFormat(formatName);
    if (fmt.answerTags) {
      var found = blocks(response, fmt.answerTags);
      return found.length === 1 ? removeAll(found[0], "\n") : null;
    }
    if (extracted === undefined) return answerRegion(response, formatName).region;
    return extracted;
  }

  function choiceLetters(choices, gold) {
    var letter = String.fromCodePoint(65 + choices.indexOf(gold));
    return [letter, "(" + letter + ")"];
  }

  function correctnessReward(response, gold, formatName, choices, extracted) {
    var answer = comparedAnswer(response, formatName, extracted);
    if (answer === null) return 0.0;
    if (answer === gold) return 2.0;
    if (choices && choices.length && choices.indexOf(gold) >= 0 &&
        choiceLetters(choices, gold).indexOf(pyStrip(answer)) >= 0) {
      return 2.0;
    }
    var a = toFloat(answer);
    var g = toFloat(gold);
    if (a !== null && g !== null && numbersEqual(a, g)) return 1.5;
    return 0.0;
  }

  // core.formats.rewards plus what the calculator shows: {format, correctness, total, failures,
  // extracted}; format and total are null for the non-tag formats, failures null for `official`.
  function rewards(response, gold, formatName, choices, extracted) {
    var fmt = getFormat(formatName);
    var w = DEFAULT_REWARD_WEIGHTS;
    var correctness = correctnessReward(response, gold, formatName, choices, extracted);
    var result = {
      format: null, correctness: correctness, total: null,
      failures: formatFailures(response, formatName),
      extracted: comparedAnswer(response, formatName, extracted)
    };
    if (fmt.answerTags) {
      result.format = formatReward(response, formatName);
      result.total = w.format * result.format + w.correctness * correctness;
    }
    return result;
  }

  // A float as Python's repr writes it (the run's records show 2.0, not 2) for the range rewards take.
  function formatNumber(x) {
    if (x === null || x === undefined) return null;
    var s = String(x);
    return Number.isInteger(x) && Math.abs(x) < 1e16 ? s + ".0" : s;
  }

  var DEFAULT_LABELS = {
    completion: "Completion",
    gold: "Gold answer",
    format: "Prompt format",
    choices: "Choices, one per line (multi-choice items only)",
    formatReward: "Format reward",
    correctnessReward: "Correctness reward (recipe mode)",
    total: "Total",
    failures: "Format failures",
    extracted: "Answer compared",
    none: "none",
    notApplicable: "n/a",
    noAnswer: "(no single answer: correctness 0)",
    nonTagNote: "Without tags the suite's scorer extracts the answer; here the last \\boxed{} " +
      "(else the whole completion) stands in for it.",
    failureNames: {}  // optional translations of the FAILURE_KINDS identifiers
  };

  function element(tag, className, text) {
    var el = document.createElement(tag);
    if (className) el.className = className;
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function labelled(labelText, control) {
    var label = element("label", "reward-calc-field");
    label.appendChild(element("span", "reward-calc-label", labelText));
    label.appendChild(control);
    return label;
  }

  /* Build the calculator inside `container` (an element or its id) and keep its results live.
   * labels: optional overrides of DEFAULT_LABELS (the page's i18n strings); initial: optional
   * {response, gold, format, choices} to start from (e.g. a record of the run). Every user string
   * goes through textContent or .value, never markup. Returns {root, update, values}: pass
   * values() as `initial` to a new mount to keep the reader's input. */
  function mount(container, labels, initial) {
    if (typeof container === "string") container = document.getElementById(container);
    var L = Object.assign({}, DEFAULT_LABELS, labels || {});
    var start = Object.assign({
      response: "<REASONING>2 + 2 = 4</REASONING><SOLUTION>4</SOLUTION>",
      gold: "4", format: "reasoning-solution", choices: []
    }, initial || {});

    var box = element("div", "reward-calc");
    var response = element("textarea", "reward-calc-response");
    response.rows = 8;
    response.cols = 60;
    response.spellcheck = false;
    response.value = start.response;
    var gold = element("input", "reward-calc-gold");
    gold.type = "text";
    gold.value = start.gold;
    var format = element("select", "reward-calc-format");
    Object.keys(PROMPT_FORMATS).forEach(function (name) {
      var option = element("option", null, name);
      option.value = name;
      option.title = PROMPT_FORMATS[name].description;
      format.appendChild(option);
    });
    format.value = Object.prototype.hasOwnProperty.call(PROMPT_FORMATS, start.format) ? start.format
      : "reasoning-solution";
    var choices = element("textarea", "reward-calc-choices");
    choices.rows = 3;
    choices.value = (start.choices || []).join("\n");
    var description = element("p", "reward-calc-description");
    [labelled(L.completion, response), labelled(L.gold, gold), labelled(L.format, format), description,
      labelled(L.choices, choices)].forEach(function (el) { box.appendChild(el); });

    var results = element("dl", "reward-calc-results");
    results.setAttribute("aria-live", "polite");
    var shown = {};
    var w = DEFAULT_REWARD_WEIGHTS;
    [["format", L.formatReward], ["correctness", L.correctnessReward],
      ["total", L.total + " (" + formatNumber(w.format) + " × " + L.formatReward + " + " +
        formatNumber(w.correctness) + " × " + L.correctnessReward + ")"],
      ["failures", L.failures], ["extracted", L.extracted]].forEach(function (row) {
      shown[row[0]] = element("dd", null);
      shown[row[0]].setAttribute("data-reward", row[0]);
      results.appendChild(element("dt", null, row[1]));
      results.appendChild(shown[row[0]]);
    });
    box.appendChild(results);
    var note = element("p", "reward-calc-note", L.nonTagNote);
    box.appendChild(note);

    function update() {
      var name = format.value;
      var r = rewards(response.value, gold.value, name, values().choices);
      description.textContent = PROMPT_FORMATS[name].description;
      shown.format.textContent = r.format === null ? L.notApplicable : formatNumber(r.format);
      shown.correctness.textContent = formatNumber(r.correctness);
      shown.total.textContent = r.total === null ? L.notApplicable : formatNumber(r.total);
      shown.failures.textContent = r.failures === null ? L.notApplicable : (r.failures.length ?
        r.failures.map(function (f) { return L.failureNames[f] || f; }).join(", ") : L.none);
      shown.extracted.textContent = r.extracted === null ? L.noAnswer : JSON.stringify(r.extracted);
      note.hidden = Boolean(PROMPT_FORMATS[name].answerTags);
    }
    [response, gold, choices].forEach(function (el) { el.addEventListener("input", update); });
    format.addEventListener("change", update);
    update();
    container.appendChild(box);
    function values() {  // what the reader typed, to carry into a re-mount (e.g. on a language switch)
      return { response: response.value, gold: gold.value, format: format.value,
        choices: choices.value.split("\n").filter(function (c) { return c !== ""; }) };
    }
    return { root: box, update: update, values: values };
  }

  root.HarnessRewards = {
    PROMPT_FORMATS: PROMPT_FORMATS,
    FAILURE_KINDS: FAILURE_KINDS,
    DEFAULT_REWARD_WEIGHTS: DEFAULT_REWARD_WEIGHTS,
    formatFailures: formatFailures,
    formatReward: formatReward,
    correctnessReward: correctnessReward,
    rewards: rewards,
    answerRegion: answerRegion,
    isDegenerate: isDegenerate,
    lastBoxed: lastBoxed,
    toFloat: toFloat,
    numbersEqual: numbersEqual,
    formatNumber: formatNumber,
    DEFAULT_LABELS: DEFAULT_LABELS,
    mount: mount
  };
})(typeof window !== "undefined" ? window : this);
