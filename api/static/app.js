// The chat page: plain JS, no framework, no build step.
// Every piece of document or model text is inserted as text (textContent / text nodes), never
// as HTML; the page's Content-Security-Policy forbids inline script as a second line of defence.
"use strict";

(() => {
  const KEY_STORAGE = "rag.apiKey";
  const $ = (id) => document.getElementById(id);
  // A citation marker: [1], [1,2], [1、2], 【1】. The source is rag.citations.MARKER's pattern,
  // character for character (tests/test_page.py checks it): one grammar on both sides.
  const CITATION_MARKER = /[\[【]\s*(\d{1,2}(?:\s*[,，、]\s*\d{1,2})*)\s*[\]】]/g;
  const MARKER_SEPARATOR = /\s*[,，、]\s*/;

  // ---- small DOM helpers -------------------------------------------------------------------

  /** An element with text children (strings become text nodes) and a few properties. */
  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props)) {
      if (name === "className") node.className = value;
      else if (name === "onclick") node.addEventListener("click", value);
      else if (name === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(name, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function clear(node) {
    node.replaceChildren();
  }

  function showError(box, message) {
    box.textContent = message;
    box.hidden = !message;
  }

  // ---- API key and requests ----------------------------------------------------------------

  const apiKey = () => sessionStorage.getItem(KEY_STORAGE) || "";

  function authHeaders(extra = {}) {
    const key = apiKey();
    return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
  }

  /** The message of an error response: `{"error": {"message"}}`, or the HTTP status. */
  async function errorMessage(response) {
    let message = `HTTP ${response.status} ${response.statusText}`.trim();
    try {
      const body = await response.json();
      if (body && body.error && body.error.message) message = body.error.message;
    } catch {
      // not JSON: keep the status line
    }
    if (response.status === 401) message += " — 请在页面顶部输入 API 密钥 / enter the API key at the top";
    return message;
  }

  async function api(path, options = {}) {
    let response;
    try {
      response = await fetch(path, { ...options, headers: authHeaders(options.headers) });
    } catch (err) {
      throw new Error(`无法连接服务器 / cannot reach the server (${err.message})`);
    }
    if (!response.ok) throw new Error(await errorMessage(response));
    return response.json();
  }

  function setupKey() {
    const input = $("api-key");
    const state = $("key-state");
    const show = () => {
      state.textContent = apiKey() ? "已保存（本会话）/ saved for this session" : "未设置 / not set";
    };
    input.value = apiKey();
    show();
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = input.value.trim();
      if (key) sessionStorage.setItem(KEY_STORAGE, key);
      else sessionStorage.removeItem(KEY_STORAGE);
      show();
      docCache.clear();
      loadDocuments();
    });
    $("key-clear").addEventListener("click", () => {
      sessionStorage.removeItem(KEY_STORAGE);
      input.value = "";
      show();
    });
  }

  // ---- server-sent events over fetch -------------------------------------------------------

  /** One SSE frame ("event:" and "data:" lines) as {event, data}; null for comments only. */
  function parseFrame(frame) {
    let event = "message";
    const data = [];
    for (const line of frame.split(/\r\n|\r|\n/)) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    return data.length ? { event, data: data.join("\n") } : null;
  }

  /** The events of a streamed response body, as they arrive. */
  async function* sseEvents(response) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      const frames = buffer.split(/\r\n\r\n|\n\n|\r\r/);
      buffer = frames.pop();
      for (const frame of frames) {
        const event = parseFrame(frame);
        if (event) yield event;
      }
    }
    const last = parseFrame(buffer);
    if (last) yield last;
  }

  // ---- asking: a conversation thread -------------------------------------------------------

  // What the server accepts of the earlier turns (conversation.max_turns, .max_turn_chars).
  const MAX_HISTORY_TURNS = 20;
  const MAX_TURN_CHARS = 4000;

  // A run is one turn of the conversation: {controller, citations: Map<marker, citation>,
  // question, answer (the final text, once the citations event came), turn (its <li>)}.
  let current = null; // the run answered last (or being answered)
  let turns = []; // the runs of this conversation, oldest first

  /** A part of a run's turn, by the id the newest turn gives it (`answer-text`, …). */
  const part = (run, name) => run.turn.querySelector(`[data-id="${name}"]`);

  /** At most `MAX_TURN_CHARS` code points (the server counts code points). */
  const clip = (text) => (text.length <= MAX_TURN_CHARS ? text : [...text].slice(0, MAX_TURN_CHARS).join(""));

  /** The earlier turns as the API's history: each answered question and its final answer
   * (a turn that was stopped or failed has no answer and is left out), the last 20 messages. */
  function history() {
    const messages = [];
    for (const run of turns) {
      if (typeof run.answer !== "string") continue;
      messages.push({ role: "user", content: clip(run.question) }, { role: "assistant", content: clip(run.answer) });
    }
    return messages.slice(-MAX_HISTORY_TURNS);
  }

  /** A new turn at the bottom of the thread; it takes the ids from the one before. */
  function newTurn(question) {
    const thread = $("thread");
    for (const node of thread.querySelectorAll("[id]")) node.removeAttribute("id");
    const turn = $("turn-template").content.firstElementChild.cloneNode(true);
    for (const node of turn.querySelectorAll("[data-id]")) node.id = node.dataset.id;
    turn.querySelector(".question-text").textContent = question;
    thread.append(turn);
    $("new-chat").hidden = false;
    return turn;
  }

  function setState(run, state) {
    part(run, "answer").dataset.state = state;
    if (run !== current) return;
    const busy = state === "streaming";
    $("ask").disabled = busy;
    $("stop").hidden = !busy;
  }

  function markStopped(run) {
    if (part(run, "answer").dataset.state !== "streaming") return;
    part(run, "answer-flags").textContent = "已停止 / stopped";
    setState(run, "stopped");
  }

  /** Start over: no turns shown, none sent as history. */
  function newConversation() {
    const run = current;
    current = null;
    if (run) run.controller.abort();
    turns = [];
    clear($("thread"));
    $("new-chat").hidden = true;
    $("ask").disabled = false;
    $("stop").hidden = true;
    $("question").focus();
  }

  async function ask(question) {
    const body = { question, stream: true };
    const earlier = history();
    if (earlier.length) body.history = earlier;
    const backend = $("backend").value;
    if (backend) body.backend = backend;
    const previous = current;
    current = null;
    if (previous) {
      previous.controller.abort();
      markStopped(previous);
    }
    const run = { controller: new AbortController(), citations: new Map(), question, answer: null, turn: newTurn(question) };
    turns.push(run);
    current = run;
    setState(run, "streaming");
    $("ask-form").scrollIntoView({ block: "nearest" });
    try {
      let response;
      try {
        response = await fetch("/v1/chat", {
          method: "POST",
          headers: authHeaders({ "Content-Type": "application/json", Accept: "text/event-stream" }),
          body: JSON.stringify(body),
          signal: run.controller.signal,
        });
      } catch (err) {
        if (err.name === "AbortError") throw err;
        throw new Error(`无法连接服务器 / cannot reach the server (${err.message})`);
      }
      if (!response.ok) throw new Error(await errorMessage(response));
      for await (const { event, data } of sseEvents(response)) {
        if (current !== run) return;
        let payload;
        try {
          payload = JSON.parse(data);
        } catch {
          continue;
        }
        handleEvent(run, event, payload);
      }
      if (current === run && part(run, "answer").dataset.state === "streaming") {
        throw new Error("回答意外中断 / the answer stopped unexpectedly");
      }
    } catch (err) {
      if (current !== run) return;
      if (err.name === "AbortError") {
        markStopped(run);
        return;
      }
      failed(run, err.message);
    }
  }

  /** A turn that failed shows why, and gives its question back to the box (to edit or retry). */
  function failed(run, message) {
    showError(part(run, "chat-error"), message);
    setState(run, "error");
    if (!$("question").value) $("question").value = run.question;
  }

  function handleEvent(run, event, payload) {
    switch (event) {
      case "passages":
        renderStandalone(run, payload.standalone_question);
        renderPassages(run, payload.passages || []);
        break;
      case "token":
        part(run, "answer-text").append(document.createTextNode(payload.text || ""));
        break;
      case "citations":
        run.answer = payload.answer || "";
        for (const c of payload.citations || []) run.citations.set(c.marker, c);
        renderAnswer(run, run.answer);
        renderCitations(run);
        renderFlags(run, payload);
        break;
      case "facts":
        renderFacts(run, payload.facts || []);
        break;
      case "done": {
        const ms = payload.timings && payload.timings.total_ms;
        if (typeof ms === "number") part(run, "answer-time").textContent = `用时 / time: ${(ms / 1000).toFixed(2)} s`;
        $("ask-form").scrollIntoView({ block: "nearest" });
        setState(run, "done");
        break;
      }
      case "error":
        failed(run, `${payload.message || "error"}${payload.type ? ` (${payload.type})` : ""}`);
        break;
      default:
        break;
    }
  }

  /** Two questions alike but for width (？ and ?) and spaces. */
  const sameQuestion = (a, b) => a.normalize("NFKC").replace(/\s+/g, "") === b.normalize("NFKC").replace(/\s+/g, "");

  /** The question actually answered, when a follow-up ("农村呢?") made it another one. */
  function renderStandalone(run, standalone) {
    const box = part(run, "standalone-question");
    clear(box);
    const shown = typeof standalone === "string" && standalone.trim() !== "" && !sameQuestion(standalone, run.question);
    if (shown) box.append(el("span", { className: "turn-label" }, "答 / Answered:"), " ", el("span", { className: "standalone-text" }, standalone));
    box.hidden = !shown;
  }

  function citeButton(run, marker) {
    const c = run.citations.get(marker);
    if (!c) return null;
    return el(
      "button",
      {
        type: "button",
        className: c.verified ? "cite" : "cite unverified",
        title: c.title,
        "aria-label": `引用 / citation ${marker}: ${c.title}`,
        dataset: { marker: String(marker) },
        onclick: () => openDocument(c.doc_id, c.start, c.end, c.quote),
      },
      `[${marker}]`,
    );
  }

  /** The final answer, with every marker number that resolves to a citation as a button
   * (`[1,2]` becomes the buttons [1][2]); a marker none of whose numbers resolves stays text. */
  function renderAnswer(run, text) {
    const box = part(run, "answer-text");
    clear(box);
    let last = 0;
    // matchAll iterates a copy of the regex: no lastIndex shared between calls
    for (const m of text.matchAll(CITATION_MARKER)) {
      const markers = m[1].split(MARKER_SEPARATOR).map(Number);
      if (!markers.some((n) => run.citations.has(n))) continue;
      const parts = markers.map((n) => citeButton(run, n) || `[${n}]`);
      box.append(document.createTextNode(text.slice(last, m.index)), ...parts);
      last = m.index + m[0].length;
    }
    box.append(document.createTextNode(text.slice(last)));
  }

  function renderFlags(run, payload) {
    const flags = [];
    if (payload.refused) flags.push("资料中没有相关信息 / the documents do not contain this");
    if (payload.fallback) flags.push("模型未能作答，显示原文摘录 / the model failed: extractive answer shown");
    part(run, "answer-flags").textContent = flags.join(" · ");
  }

  function renderCitations(run) {
    const list = part(run, "citation-list");
    clear(list);
    for (const [marker, c] of run.citations) {
      list.append(
        el(
          "li",
          {},
          citeButton(run, marker),
          " ",
          el("strong", {}, c.title || c.source),
          " ",
          el("span", { className: c.verified ? "badge ok" : "badge warn" }, c.verified ? "已核实 / verified" : "未核实 / unverified"),
          el("q", { className: "quote" }, c.quote || ""),
        ),
      );
    }
    part(run, "citations").hidden = run.citations.size === 0;
  }

  function renderPassages(run, passages) {
    const list = part(run, "passage-list");
    clear(list);
    for (const p of passages) {
      list.append(
        el(
          "li",
          {},
          el(
            "button",
            { type: "button", className: "link", onclick: () => openDocument(p.doc_id, p.start, p.end, p.text) },
            `[${p.n}] ${p.title || p.source}`,
          ),
          el("span", { className: "muted" }, ` ${[p.date, p.region].filter(Boolean).join(" · ")}`),
          el("p", { className: "passage" }, p.text || ""),
        ),
      );
    }
    part(run, "passages").hidden = passages.length === 0;
  }

  // ---- the facts table of comparison answers ----------------------------------------------

  // Columns in this order, each shown when some fact has it (the unit goes with the value).
  const FACT_COLUMNS = [
    ["entity", "地区或年份 / Entity"],
    ["indicator", "指标 / Indicator"],
    ["value", "数值 / Value"],
    ["direction", "变化 / Change"],
    ["period", "时期 / Period"],
    ["implausible", "存疑 / Implausible"],
    ["marker", "引用 / Source"],
  ];
  const DIRECTIONS = { down: "↓ 下降 / down", up: "↑ 上升 / up" };

  function factCell(run, fact, key) {
    const value = fact[key];
    if (key === "marker") {
      const button = typeof value === "number" ? citeButton(run, value) : null;
      if (button) return button;
      if (fact.doc_id && typeof fact.start === "number" && typeof fact.end === "number") {
        const label = typeof value === "number" ? `[${value}]` : "原文 / source";
        return el("button", { type: "button", className: "cite", onclick: () => openDocument(fact.doc_id, fact.start, fact.end, fact.quote) }, label);
      }
    }
    if (value === undefined || value === null || value === "") return "—";
    if (key === "value" && typeof fact.unit === "string") return `${value}${fact.unit}`;
    if (key === "direction") return DIRECTIONS[value] || String(value);
    if (key === "implausible") return value ? "⚠ 是 / yes" : "";
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  function renderFacts(run, facts) {
    const table = part(run, "facts-table");
    clear(table);
    const rows = facts.filter((f) => f && typeof f === "object");
    const shown = (key) =>
      key === "marker"
        ? rows.some((f) => typeof f.marker === "number" || f.doc_id)
        : rows.some((f) => f[key] !== undefined && f[key] !== null && f[key] !== false);
    const columns = FACT_COLUMNS.filter(([key]) => shown(key));
    const head = el("tr", {}, ...columns.map(([, label]) => el("th", { scope: "col" }, label)));
    const body = rows.map((f) =>
      el(
        "tr",
        { className: f.implausible ? "implausible" : "" },
        ...columns.map(([key]) => el("td", { className: `col-${key}` }, factCell(run, f, key))),
      ),
    );
    table.append(el("thead", {}, head), el("tbody", {}, ...body));
    part(run, "facts").hidden = rows.length === 0;
  }

  // ---- the document view -------------------------------------------------------------------

  const docCache = new Map();
  let viewing = 0;

  async function getDocument(docId) {
    if (!docCache.has(docId)) {
      const promise = api(`/v1/documents/${encodeURIComponent(docId)}`);
      docCache.set(docId, promise);
      promise.catch(() => docCache.delete(docId));
    }
    return docCache.get(docId);
  }

  /** UTF-16 index of code point `cp` in `text` (the API's offsets count code points). */
  function unitIndex(text, cp) {
    let i = 0;
    for (let n = 0; n < cp && i < text.length; n++) {
      const c = text.charCodeAt(i);
      i += c >= 0xd800 && c <= 0xdbff && i + 1 < text.length ? 2 : 1;
    }
    return i;
  }

  /** Show a document; with offsets, highlight text[start:end] and scroll it into view. */
  async function openDocument(docId, start, end, quote) {
    const ticket = ++viewing;
    const viewer = $("viewer");
    viewer.hidden = false;
    $("doc-title").textContent = "加载中… / loading…";
    $("doc-meta").textContent = "";
    showError($("doc-error"), "");
    clear($("doc-text"));
    let doc;
    try {
      doc = await getDocument(docId);
    } catch (err) {
      if (ticket !== viewing) return;
      $("doc-title").textContent = docId;
      showError($("doc-error"), err.message);
      return;
    }
    if (ticket !== viewing) return;
    $("doc-title").textContent = doc.title || doc.source;
    $("doc-meta").textContent = [
      doc.date && `日期 / date: ${doc.date}`,
      doc.region && `地区 / region: ${doc.region}`,
      `${doc.source}`,
    ]
      .filter(Boolean)
      .join(" · ");
    const text = doc.text || "";
    const box = $("doc-text");
    if (typeof start !== "number" || typeof end !== "number") {
      box.append(document.createTextNode(text));
      box.scrollTop = 0;
      viewer.scrollIntoView({ block: "start" });
      return;
    }
    let from = unitIndex(text, start);
    let to = unitIndex(text, end);
    if (quote && text.slice(from, to) !== quote) {
      // The document changed since the answer: find the quoted text instead, if it is there.
      const at = text.indexOf(quote);
      if (at >= 0) [from, to] = [at, at + quote.length];
    }
    const mark = el("mark", { id: "doc-mark" }, text.slice(from, to));
    box.append(document.createTextNode(text.slice(0, from)), mark, document.createTextNode(text.slice(to)));
    // Centre the mark in the text box, then scroll the page only as far as needed (a phone).
    box.scrollTop = mark.offsetTop - (box.clientHeight - mark.offsetHeight) / 2;
    mark.scrollIntoView({ block: "nearest" });
  }

  function setupViewer() {
    $("doc-close").addEventListener("click", () => {
      viewing++;
      $("viewer").hidden = true;
    });
  }

  // ---- the documents panel -----------------------------------------------------------------

  const STATUS = {
    added: "已添加 / added",
    replaced: "已替换 / replaced",
    unchanged: "未变化 / unchanged",
    failed: "失败 / failed",
    removed: "已删除 / removed",
  };
  const JOB_STATUS = {
    queued: "排队中 / queued",
    running: "处理中 / ingesting",
    done: "完成 / done",
    failed: "失败 / failed",
  };

  async function loadDocuments() {
    showError($("docs-error"), "");
    let page;
    try {
      page = await api("/v1/documents?limit=1000");
    } catch (err) {
      showError($("docs-error"), err.message);
      return;
    }
    const list = $("doc-list");
    clear(list);
    $("docs-count").textContent = `${page.total} 篇文档 / documents`;
    for (const d of page.documents) {
      const meta = [d.source, d.date, d.region, `${d.chunks} 段 / chunks`].filter(Boolean).join(" · ");
      list.append(
        el(
          "li",
          { dataset: { docId: d.doc_id } },
          el("button", { type: "button", className: "link doc-open", onclick: () => openDocument(d.doc_id) }, d.title || d.source),
          el("span", { className: "muted meta" }, meta),
          deleteButton(d),
        ),
      );
    }
  }

  /** Delete in two clicks (no modal dialog): the first arms the button for a few seconds. */
  function deleteButton(doc) {
    const label = "删除 / Delete";
    const button = el("button", { type: "button", className: "danger delete" }, label);
    let timer = 0;
    button.addEventListener("click", async () => {
      if (!button.dataset.armed) {
        button.dataset.armed = "1";
        button.textContent = "确认删除？/ Confirm";
        timer = setTimeout(() => {
          delete button.dataset.armed;
          button.textContent = label;
        }, 4000);
        return;
      }
      clearTimeout(timer);
      button.disabled = true;
      try {
        await api(`/v1/documents/${encodeURIComponent(doc.doc_id)}`, { method: "DELETE" });
        docCache.delete(doc.doc_id);
        await loadDocuments();
      } catch (err) {
        showError($("docs-error"), `${doc.source}: ${err.message}`);
        button.disabled = false;
      }
    });
    return button;
  }

  async function upload(files) {
    if (!files.length) return;
    const status = $("upload-status");
    const rows = new Map();
    const form = new FormData();
    for (const f of files) {
      form.append("file", f, f.name);
      const row = el("li", { className: "pending" }, `${f.name}: 上传中… / uploading…`);
      rows.set(f.name, row);
      status.prepend(row);
    }
    try {
      let result = await api("/v1/documents", { method: "POST", body: form });
      if (result.job) result = await followJob(result, status); // 202: a job
      for (const r of result.documents) {
        const row = rows.get(r.source) || status.insertBefore(el("li"), status.firstChild);
        row.className = `status-${r.status}`;
        row.dataset.status = r.status;
        const chunks = r.status === "failed" ? "" : ` (${r.chunks} 段 / chunks)`;
        row.textContent = `${r.source}: ${STATUS[r.status] || r.status}${chunks}${r.message ? ` — ${r.message}` : ""}`;
      }
    } catch (err) {
      for (const [name, row] of rows) {
        row.className = "status-failed";
        row.dataset.status = "failed";
        row.textContent = `${name}: ${STATUS.failed} — ${err.message}`;
      }
    }
    docCache.clear();
    await loadDocuments();
  }

  // A large upload is ingested as a job (202): a progress bar follows it until it ends, then
  // its per-file results are shown as a small upload's are. A job that failed as a whole throws.
  async function followJob(job, status) {
    const bar = el("progress", { className: "job-progress", max: 1, value: 0 });
    const label = el("span", { className: "job-label" });
    const row = el("li", { className: "job" }, bar, " ", label);
    row.dataset.job = job.job;
    status.prepend(row);
    for (;;) {
      const total = Math.max(job.chunks_total, job.chunks_done, 1);
      bar.max = total;
      bar.value = job.chunks_done;
      label.textContent =
        `${job.files_done}/${job.files.length} 文件 / files, ` +
        `${job.chunks_done}/${job.chunks_total} 段 / chunks` +
        (job.errors ? `, ${job.errors} 失败 / failed` : "") +
        ` — ${JOB_STATUS[job.status] || job.status}`;
      row.dataset.status = job.status;
      if (job.status === "done") {
        bar.max = bar.value = Math.max(job.chunks_total, 1);
        return job;
      }
      if (job.status === "failed") throw new Error(job.error || JOB_STATUS.failed);
      await new Promise((resolve) => setTimeout(resolve, 500));
      job = await api(`/v1/jobs/${encodeURIComponent(job.job)}`);
    }
  }

  function setupDocuments() {
    const input = $("file-input");
    input.addEventListener("change", () => {
      const files = [...input.files];
      input.value = "";
      upload(files);
    });
    const drop = $("drop");
    // Dropping a file anywhere else must not navigate away from the page.
    for (const type of ["dragover", "drop"]) window.addEventListener(type, (e) => e.preventDefault());
    drop.addEventListener("dragover", (e) => {
      e.preventDefault();
      drop.classList.add("over");
    });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      drop.classList.remove("over");
      upload([...e.dataTransfer.files]);
    });
    $("docs-reload").addEventListener("click", () => {
      docCache.clear();
      loadDocuments();
    });
  }

  // ---- start -------------------------------------------------------------------------------

  function setupAsk() {
    const question = $("question");
    $("ask-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const q = question.value.trim();
      if (!q) return;
      question.value = ""; // the question now shows in the thread
      ask(q);
    });
    // Enter asks, Shift+Enter starts a new line (IME composition keeps its Enter).
    question.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        $("ask-form").requestSubmit();
      }
    });
    $("stop").addEventListener("click", () => current && current.controller.abort());
    $("new-chat").addEventListener("click", newConversation);
  }

  setupKey();
  setupAsk();
  setupViewer();
  setupDocuments();
  loadDocuments();
})();
