/* The report page's behaviour: sortable tables, the English / 中文 switch, the item flips and the
 * item explorer (rendered from the embedded JSON on demand), and mounting the reward calculator.
 *
 * Everything shown here comes from run directories and is untrusted: it is put on the page only
 * through textContent, element properties and createElement, never parsed as HTML, and no URL is
 * ever built from it (images are data: URLs the report builder made itself).
 */
(function () {
  "use strict";

  function readJson(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  var STRINGS = readJson("i18n-data") || { en: {} };
  var DATA = readJson("report-data") || { items: [], flips: [], runs: [], images: {}, suites: [] };
  var lang = document.documentElement.getAttribute("data-lang") || "en";
  var PAGE_SIZE = 20;
  var INLINE_RESPONSE_CHARS = 500;
  var IMAGE_PREFIX = "data:image/jpeg;base64,";
  var COLOR = /^#[0-9a-fA-F]{6}$/;
  var onLanguageChange = [];

  function t(key) {
    var table = STRINGS[lang] || STRINGS.en;
    if (Object.prototype.hasOwnProperty.call(table, key)) return table[key];
    return STRINGS.en[key] || key;
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function i18nSpan(key, className) {
    var node = el("span", className, t(key));
    node.setAttribute("data-i18n", key);
    return node;
  }

  function fmt(x) {
    if (x === null || x === undefined) return "–";
    return Number.isInteger(x) ? x.toFixed(1) : String(Math.round(x * 1000) / 1000);
  }

  /* ---- language switch ------------------------------------------------------------------- */
  function applyLanguage(next) {
    if (!STRINGS[next]) return;
    lang = next;
    var root = document.documentElement;
    root.setAttribute("data-lang", next);
    root.setAttribute("lang", next === "zh" ? "zh-CN" : "en");
    document.querySelectorAll("[data-i18n]").forEach(function (node) {
      node.textContent = t(node.getAttribute("data-i18n"));
    });
    document.querySelectorAll("[data-i18n-ph]").forEach(function (node) {
      node.placeholder = t(node.getAttribute("data-i18n-ph"));
      node.setAttribute("aria-label", node.placeholder);
    });
    document.querySelectorAll("[data-i18n-aria]").forEach(function (node) {
      node.setAttribute("aria-label", t(node.getAttribute("data-i18n-aria")));
    });
    document.querySelectorAll("[data-i18n-svg]").forEach(function (group) {
      var label = group.querySelector("text");
      if (label) label.textContent = t(group.getAttribute("data-i18n-svg"));
    });
    document.querySelectorAll("table.sortable th").forEach(function (th) { th.title = t("sort.hint"); });
    document.querySelectorAll(".lang-switch button").forEach(function (button) {
      button.setAttribute("aria-pressed", button.getAttribute("data-lang") === next ? "true" : "false");
    });
    onLanguageChange.forEach(function (fn) { fn(); });
  }

  function initLanguageSwitch() {
    document.querySelectorAll(".lang-switch button").forEach(function (button) {
      button.addEventListener("click", function () { applyLanguage(button.getAttribute("data-lang")); });
    });
  }

  /* ---- sortable tables ------------------------------------------------------------------- */
  function sortKey(row, col) {
    var td = row.cells[col];
    if (!td) return null;
    var raw = td.hasAttribute("data-sort") ? td.getAttribute("data-sort") : td.textContent.trim();
    if (raw === "" || raw === "–") return null;
    var asNumber = Number(raw);
    return isNaN(asNumber) ? raw.toLowerCase() : asNumber;
  }

  function sortTable(table, col, ascending) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var keyed = rows.map(function (row, i) { return { row: row, key: sortKey(row, col), i: i }; });
    keyed.sort(function (a, b) {
      if (a.key === null || b.key === null) {
        if (a.key === b.key) return a.i - b.i;
        return a.key === null ? 1 : -1; // blanks last in both directions
      }
      var c;
      if (typeof a.key === "number" && typeof b.key === "number") c = a.key - b.key;
      else c = String(a.key).localeCompare(String(b.key));
      return (ascending ? c : -c) || a.i - b.i;
    });
    keyed.forEach(function (k) { body.appendChild(k.row); });
    table.querySelectorAll("th").forEach(function (th) { th.setAttribute("aria-sort", "none"); });
    table.tHead.rows[0].cells[col].setAttribute("aria-sort", ascending ? "ascending" : "descending");
  }

  function initSorting() {
    document.querySelectorAll("table.sortable").forEach(function (table) {
      if (!table.tHead || !table.tBodies.length) return;
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
        th.title = t("sort.hint");
        function activate() { sortTable(table, col, th.getAttribute("aria-sort") !== "ascending"); }
        th.addEventListener("click", activate);
        th.addEventListener("keydown", function (e) {
          if (e.key === "Enter" || e.key === " ") { e.preventDefault(); activate(); }
        });
      });
    });
  }

  /* ---- one item, every run side by side ------------------------------------------------ */
  function runChip(index) {
    var run = DATA.runs[index] || { label: "?", color: "#888888" };
    var chip = el("span", "run-chip");
    var swatch = el("span", "swatch");
    if (COLOR.test(run.color)) swatch.style.background = run.color;
    chip.appendChild(swatch);
    chip.appendChild(document.createTextNode(run.label));
    return chip;
  }

  function labelled(key, valueNode) {
    var line = el("div", "line");
    line.appendChild(i18nSpan(key, "label"));
    line.appendChild(valueNode);
    return line;
  }

  function responseBlock(entry) {
    var wrap = el("div");
    if (typeof entry.t !== "string") {
      wrap.appendChild(i18nSpan("item.no_response", "muted"));
      return wrap;
    }
    if (entry.t.length <= INLINE_RESPONSE_CHARS) {
      wrap.appendChild(el("pre", "response", entry.t));
    } else {
      // long responses stay collapsed and are only put in the DOM when opened
      var details = el("details");
      var summary = el("summary");
      summary.appendChild(i18nSpan("item.show_response"));
      summary.appendChild(document.createTextNode(" (" + (entry.tl || entry.t.length) + " "));
      summary.appendChild(i18nSpan("item.chars"));
      summary.appendChild(document.createTextNode(")"));
      details.appendChild(summary);
      details.addEventListener("toggle", function () {
        if (details.open && !details.querySelector("pre")) details.appendChild(el("pre", "response", entry.t));
      });
      wrap.appendChild(details);
    }
    if (entry.tl) wrap.appendChild(i18nSpan("item.truncated", "cut-note"));
    return wrap;
  }

  function runColumn(entry, index, highlight) {
    var col = el("div", "resp");
    var run = DATA.runs[index] || {};
    if (COLOR.test(run.color)) col.style.borderTopColor = run.color;
    var head = el("div", "line");
    head.appendChild(runChip(index));
    if (index === 0) { head.appendChild(document.createTextNode(" ")); head.appendChild(i18nSpan("role.baseline", "tag base")); }
    if (highlight) col.setAttribute("data-highlight", "true");
    col.appendChild(head);
    if (!entry) {
      col.appendChild(i18nSpan("item.no_record", "muted"));
      return col;
    }
    var right = entry.a >= 0.5;
    var verdict = el("div", "line");
    var mark = el("span", "verdict " + (right ? "ok" : "bad"), right ? "✓ " : "✗ ");
    mark.appendChild(i18nSpan(right ? "item.correct" : "item.wrong"));
    verdict.appendChild(mark);
    if (entry.k) {
      verdict.appendChild(document.createTextNode(" " + Math.round(entry.a * entry.k) + "/" + entry.k + " "));
      verdict.appendChild(i18nSpan("item.attempts", "muted"));
    }
    col.appendChild(verdict);
    col.appendChild(labelled("item.extracted", el("code", "", entry.x === undefined ? "–" : entry.x)));
    if (entry.f === true) {
      col.appendChild(el("div", "line")).appendChild(i18nSpan("item.format_ok", "delta pos"));
    } else if (entry.f === false) {
      col.appendChild(labelled("item.format_bad", el("code", "delta neg", (entry.ff || []).join(", ") || "?")));
    }
    if (entry.rw) {
      var rewards = el("span");
      ["item.reward_format", "item.reward_correctness", "item.reward_total"].forEach(function (key, i) {
        if (i) rewards.appendChild(document.createTextNode(" · "));
        rewards.appendChild(i18nSpan(key, "muted"));
        rewards.appendChild(document.createTextNode(" " + fmt(entry.rw[i])));
      });
      if (entry.rwm) {  // the stored verdict's reward mode: "suite" (the scorer's verdict) or "recipe"
        rewards.appendChild(document.createTextNode(" "));
        rewards.appendChild(el("span", "muted", "(" + entry.rwm + ")"));
      }
      col.appendChild(labelled("item.rewards", rewards));
    }
    if (entry.fin === "length") col.appendChild(el("div", "line")).appendChild(i18nSpan("item.length", "cut-note"));
    if (entry.e) col.appendChild(labelled("item.error", el("span", "delta neg", entry.e)));
    col.appendChild(responseBlock(entry));
    return col;
  }

  function renderItem(item, direction, highlightRun) {
    var card = el("article", "item-card");
    card.setAttribute("data-suite", item.s);
    card.setAttribute("data-sample-id", item.id);
    var head = el("div", "item-head");
    if (direction) {
      var badge = el("span", "badge " + direction);
      badge.appendChild(i18nSpan(direction === "fixed" ? "dir.fixed" : "dir.broken"));
      head.appendChild(badge);
    }
    head.appendChild(el("span", "suite-name", item.s));
    head.appendChild(el("span", "sid", item.id));
    Object.keys(item.m || {}).forEach(function (field) {
      var value = item.m[field];
      head.appendChild(el("span", "tag", field + ": " + (Array.isArray(value) ? value.join(", ") : value)));
    });
    card.appendChild(head);
    var body = el("div", "item-body");
    var url = item.img !== undefined ? DATA.images[item.img] : null;
    if (typeof url === "string" && url.indexOf(IMAGE_PREFIX) === 0) {
      var img = el("img", "thumb");
      img.alt = "";
      img.src = url;
      body.appendChild(img);
    }
    var text = el("div", "item-text");
    text.appendChild(i18nSpan("item.question", "label"));
    text.appendChild(el("p", "question", item.q === undefined || item.q === null ? "–" : item.q));
    if (item.c && item.c.length) {
      text.appendChild(i18nSpan("item.choices", "label"));
      var list = el("ol");
      list.type = "A";
      item.c.forEach(function (choice) { list.appendChild(el("li", "", choice)); });
      text.appendChild(list);
    }
    text.appendChild(labelled("item.gold", el("code", "", item.g === undefined || item.g === null ? "–" : item.g)));
    body.appendChild(text);
    card.appendChild(body);
    var responses = el("div", "responses");
    (item.r || []).forEach(function (entry, i) { responses.appendChild(runColumn(entry, i, i === highlightRun)); });
    card.appendChild(responses);
    return card;
  }

  /* ---- select helpers ------------------------------------------------------------------ */
  function fillSelect(select, options) {
    // options: [{value, label, key}] where key (optional) is an i18n key for the label
    var previous = select.value;
    select.replaceChildren();
    options.forEach(function (o) {
      var option = el("option", "", o.key ? t(o.key) : o.label);
      option.value = o.value;
      select.appendChild(option);
    });
    if (options.some(function (o) { return o.value === previous; })) select.value = previous;
  }

  /* ---- item flips ---------------------------------------------------------------------- */
  function initFlips() {
    var list = document.getElementById("flip-list");
    if (!list) return;
    var runSelect = document.getElementById("flip-run");
    var suiteSelect = document.getElementById("flip-suite");
    var categorySelect = document.getElementById("flip-category");
    var directionSelect = document.getElementById("flip-direction");
    var search = document.getElementById("flip-search");
    var count = document.getElementById("flip-count");
    var more = document.getElementById("flip-more");
    var shown = PAGE_SIZE;

    function candidates() {
      var seen = [];
      DATA.flips.forEach(function (f) { if (seen.indexOf(f.run) < 0) seen.push(f.run); });
      return seen;
    }

    function currentFlips() {
      var run = Number(runSelect.value);
      return DATA.flips.filter(function (f) {
        return f.run === run && (suiteSelect.value === "" || f.suite === suiteSelect.value);
      });
    }

    function categoriesOf(flips) {
      var found = {};
      flips.forEach(function (f) {
        f.fixed.concat(f.broken).forEach(function (idx) {
          var meta = DATA.items[idx].m || {};
          Object.keys(meta).forEach(function (field) {
            [].concat(meta[field]).forEach(function (v) { found[JSON.stringify([field, v])] = field + ": " + v; });
          });
        });
      });
      return Object.keys(found).sort().map(function (k) { return { value: k, label: found[k] }; });
    }

    function fillControls() {
      fillSelect(runSelect, candidates().map(function (i) { return { value: String(i), label: DATA.runs[i].label }; }));
      var suites = [];
      DATA.flips.forEach(function (f) {
        if (f.run === Number(runSelect.value) && suites.indexOf(f.suite) < 0) suites.push(f.suite);
      });
      fillSelect(suiteSelect, [{ value: "", key: "filter.all" }].concat(
        suites.map(function (s) { return { value: s, label: s }; })));
      fillSelect(categorySelect, [{ value: "", key: "filter.all" }].concat(categoriesOf(currentFlips())));
      fillSelect(directionSelect, [{ value: "", key: "filter.all" }, { value: "fixed", key: "dir.fixed" },
        { value: "broken", key: "dir.broken" }]);
    }

    function matches(item) {
      if (categorySelect.value) {
        var want = JSON.parse(categorySelect.value);
        var value = (item.m || {})[want[0]];
        if ([].concat(value === undefined ? [] : value).indexOf(want[1]) < 0) return false;
      }
      var q = search.value.trim().toLowerCase();
      if (!q) return true;
      return String(item.id).toLowerCase().indexOf(q) >= 0 ||
        (typeof item.q === "string" && item.q.toLowerCase().indexOf(q) >= 0);
    }

    function render() {
      var rows = [];
      var nFixed = 0, nBroken = 0;
      currentFlips().forEach(function (f) {
        ["fixed", "broken"].forEach(function (direction) {
          if (directionSelect.value && directionSelect.value !== direction) return;
          f[direction].forEach(function (idx) {
            if (!matches(DATA.items[idx])) return;
            rows.push({ idx: idx, direction: direction });
            if (direction === "fixed") nFixed++; else nBroken++;
          });
        });
      });
      list.replaceChildren();
      var run = Number(runSelect.value);
      rows.slice(0, shown).forEach(function (row) {
        list.appendChild(renderItem(DATA.items[row.idx], row.direction, run));
      });
      count.replaceChildren();
      if (!rows.length) {
        count.appendChild(i18nSpan("flips.none"));
      } else {
        count.appendChild(i18nSpan("flips.shown"));
        count.appendChild(document.createTextNode(" " + Math.min(shown, rows.length) + " / " + rows.length + " · "));
        count.appendChild(i18nSpan("col.fixed", "delta pos"));
        count.appendChild(document.createTextNode(" " + nFixed + " · "));
        count.appendChild(i18nSpan("col.broken", "delta neg"));
        count.appendChild(document.createTextNode(" " + nBroken));
      }
      count.setAttribute("data-fixed", String(nFixed));
      count.setAttribute("data-broken", String(nBroken));
      more.hidden = rows.length <= shown;
    }

    function reset() { shown = PAGE_SIZE; render(); }
    runSelect.addEventListener("change", function () { fillControls(); reset(); });
    suiteSelect.addEventListener("change", function () {
      fillSelect(categorySelect, [{ value: "", key: "filter.all" }].concat(categoriesOf(currentFlips())));
      reset();
    });
    categorySelect.addEventListener("change", reset);
    directionSelect.addEventListener("change", reset);
    search.addEventListener("input", reset);
    more.addEventListener("click", function () { shown += PAGE_SIZE; render(); });
    onLanguageChange.push(function () { fillControls(); render(); });
    fillControls();
    render();
  }

  /* ---- the same question across runs ------------------------------------------------------ */
  function initExplorer() {
    var view = document.getElementById("item-view");
    if (!view) return;
    var suiteSelect = document.getElementById("item-suite");
    var search = document.getElementById("item-search");
    var picker = document.getElementById("item-picker");
    var selected = null;
    var MAX_BUTTONS = 60;

    fillSelect(suiteSelect, DATA.suites.map(function (s) { return { value: s, label: s }; }));

    function show(idx) {
      selected = idx;
      view.replaceChildren(renderItem(DATA.items[idx], null, -1));
      picker.querySelectorAll("button").forEach(function (b) {
        b.setAttribute("aria-selected", Number(b.getAttribute("data-idx")) === idx ? "true" : "false");
      });
    }

    function refresh() {
      var q = search.value.trim().toLowerCase();
      var found = [];
      DATA.items.forEach(function (item, idx) {
        if (item.s !== suiteSelect.value) return;
        if (q && String(item.id).toLowerCase().indexOf(q) < 0 &&
          !(typeof item.q === "string" && item.q.toLowerCase().indexOf(q) >= 0)) return;
        found.push(idx);
      });
      picker.replaceChildren();
      found.slice(0, MAX_BUTTONS).forEach(function (idx) {
        var item = DATA.items[idx];
        var question = typeof item.q === "string" ? item.q.replace(/\s+/g, " ").slice(0, 60) : "";
        var button = el("button", "", item.id + (question ? " — " + question : ""));
        button.type = "button";
        button.setAttribute("role", "option");
        button.setAttribute("data-idx", String(idx));
        button.addEventListener("click", function () { show(idx); });
        picker.appendChild(button);
      });
      if (found.length > MAX_BUTTONS) {
        picker.appendChild(el("span", "muted", "+" + (found.length - MAX_BUTTONS) + " " + t("items.matches")));
      }
      if (!found.length) {
        view.replaceChildren(i18nSpan("items.none", "muted"));
        selected = null;
      } else if (found.indexOf(selected) < 0) {
        show(found[0]);
      } else {
        show(selected);
      }
    }

    suiteSelect.addEventListener("change", refresh);
    search.addEventListener("input", refresh);
    onLanguageChange.push(function () { if (selected !== null) show(selected); });
    refresh();
  }

  /* ---- reward calculator ---------------------------------------------------------------- */
  function rewardLabels() {
    var labels = {};
    var table = STRINGS[lang] || STRINGS.en;
    Object.keys(table).forEach(function (key) { if (key.indexOf("rw.") === 0) labels[key.slice(3)] = table[key]; });
    return labels;
  }

  function currentRewardInputs(container) {
    // what the reader typed, so that switching the language keeps it
    function value(cls) { var node = container.querySelector("." + cls); return node ? node.value : null; }
    var response = value("reward-calc-response");
    if (response === null) return undefined;
    var choices = value("reward-calc-choices");
    return { response: response, gold: value("reward-calc-gold") || "", format: value("reward-calc-format"),
      choices: choices ? choices.split("\n").filter(function (c) { return c !== ""; }) : [] };
  }

  function mountRewards() {
    var container = document.getElementById("reward-calculator");
    if (!container) return;
    var initial = currentRewardInputs(container);
    container.replaceChildren();
    var api = window.HarnessRewards;
    if (!api || typeof api.mount !== "function") {
      container.appendChild(i18nSpan("rewards.missing", "muted"));
      return;
    }
    api.mount(container, rewardLabels(), initial);
  }

  function run(name, fn) {
    try { fn(); } catch (err) { console.error("report: " + name + " failed", err); }
  }

  run("language switch", initLanguageSwitch);
  run("sorting", initSorting);
  run("flips", initFlips);
  run("explorer", initExplorer);
  run("reward calculator", mountRewards);
  onLanguageChange.push(function () { run("reward calculator", mountRewards); });
})();
