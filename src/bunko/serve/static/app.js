// bunko's page: plain JS, no build step, no CDN. Talks to /api/* on the same origin.
"use strict";

const $ = (id) => document.getElementById(id);
const JA = /[\u3040-\u30ff\u3400-\u9fff]/;
let current = null; // the last /api/query object
let readerState = null;

function token() {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) {
    // A malformed escape (#token=%E0%A4%A) must not stop the page: keep it as typed.
    let t = m[1];
    try { t = decodeURIComponent(t); } catch (e) { /* not percent-encoded: as is */ }
    sessionStorage.setItem("bunko-token", t);
  }
  return sessionStorage.getItem("bunko-token");
}

const MAX_K = 50; // as the server's bound (bunko.serve.results.MAX_K)

// k from the address bar: a whole number clamped to 1..MAX_K, offered in the list
// if it is not there yet; anything else keeps the default.
function setK(raw) {
  const n = Number.parseInt(raw, 10);
  if (!Number.isFinite(n) || String(n) !== String(raw).trim()) return;
  const k = String(Math.min(MAX_K, Math.max(1, n)));
  const select = $("k");
  if (![...select.options].some((o) => o.value === k)) {
    select.append(el("option", { value: k, textContent: k }));
  }
  select.value = k;
}

function headers(extra) {
  const h = Object.assign({}, extra || {});
  const t = token();
  if (t) h["Authorization"] = "Bearer " + t;
  return h;
}

async function getJSON(url) {
  const r = await fetch(url, { headers: headers() });
  const data = await r.json().catch(() => ({ error: "HTTP " + r.status }));
  if (!r.ok) throw new Error(data.error || "HTTP " + r.status);
  return data;
}

function el(tag, attrs, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") n.className = v;
    else if (k.startsWith("data-")) n.setAttribute(k, v);
    else n[k] = v;
  }
  for (const c of children) if (c != null) n.append(c);
  return n;
}

function langOf(text) { return JA.test(text) ? "ja" : "en"; }

function message(text, isError) {
  const m = $("message");
  m.textContent = text || "";
  m.hidden = !text;
  m.classList.toggle("error", !!isError);
}

// Article Markdown shown as text, never as HTML: heading marks dropped, **bold** in
// <strong>; passages trimmed around the highlight as the terminal does
// (bunko.render.passage_lines).
const EMPHASIS = /(\*\*|__)(?=\S)(.+?)(?<=\S)\1/g;
const PASSAGE_CHARS = 480;
const LINE_CHARS = 200;

function plain(text) { return text.replace(EMPHASIS, "$2"); }
function flat(text) { return plain(text).split(/\s+/).filter(Boolean).join(" "); }
function mdLine(line) { return line.replace(/^#{1,6}\s+/, "").replace(/^[-*+]\s+/, "• "); }

function inline(text) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(EMPHASIS)) {
    out.push(text.slice(last, m.index), el("strong", {}, m[2]));
    last = m.index + m[0].length;
  }
  out.push(text.slice(last));
  return out;
}

function passageLines(text, highlight) {
  const lines = text.split(/\r\n|\r|\n/).map((l) => l.trim()).filter(Boolean);
  if (!lines.length) return [];
  const head = flat(highlight).slice(0, 20);
  const at = Math.max(0, lines.findIndex((l) => head && flat(l).includes(head)));
  const start = Math.max(0, at - 1);
  const out = start ? ["…"] : [];
  let used = 0;
  for (let ln of lines.slice(start)) {
    if (ln.length > LINE_CHARS) ln = ln.slice(0, LINE_CHARS) + "…";
    if (used && used + ln.length > PASSAGE_CHARS) { out.push("…"); break; }
    out.push(ln);
    used += ln.length;
  }
  return out;
}

// The trimmed passage, its highlight marked once (from where it starts in its line).
function passageBlock(text, highlight) {
  const p = el("p", { class: "passage" });
  const hl = flat(highlight);
  let marked = false;
  passageLines(text, highlight).forEach((line, i) => {
    if (i) p.append(el("br"));
    const shown = flat(mdLine(line));
    const whole = hl ? shown.indexOf(hl) : -1;
    const part = hl && whole < 0 ? shown.indexOf(hl.slice(0, 20)) : -1;
    if (!marked && (whole >= 0 || part >= 0)) {
      marked = true;
      const from = whole >= 0 ? whole : part;
      const to = whole >= 0 ? whole + hl.length : shown.length;
      p.append(shown.slice(0, from), el("mark", {}, shown.slice(from, to)), shown.slice(to));
    } else {
      p.append(...inline(mdLine(line)));
    }
  });
  return p;
}

function pages(page) {
  if (!page) return "";
  return page[0] === page[1] ? `p.${page[0]}` : `pp.${page[0]}-${page[1]}`;
}

function closeReader() {
  $("reader").hidden = true;
  $("reader-body").replaceChildren();
  readerState = null;
  delete document.body.dataset.reader;
}

function renderResults(data) {
  current = data;
  const list = $("results");
  list.replaceChildren();
  $("no-answer").hidden = data.answerable !== false;
  if (!data.results.length) message("No passages found. / 該当する文章がありません。");
  for (const r of data.results) {
    const where = `${r.source}:${r.lines[0]}-${r.lines[1]}` + (r.page ? " " + pages(r.page) : "");
    const cite = el("button", { class: "citation", type: "button", textContent: where,
      title: "Open the source at these lines", "data-source": r.source,
      "data-start": String(r.lines[0]), "data-end": String(r.lines[1]) });
    cite.addEventListener("click", () => openReader(r.source, r.lines[0], r.lines[1], r.title));
    const meta = [`score ${r.score.toFixed(3)}`, `confidence ${r.confidence.toFixed(2)}`];
    const link = r.url ? el("a", { href: r.link || r.url, textContent: r.url, rel: "noreferrer",
      target: "_blank", className: "url" }) : null;
    const item = el("li", { class: "result" + (data.answerable === false ? " weak" : ""),
      id: "r-" + r.rank, lang: langOf(r.text), "data-rank": String(r.rank) },
      el("h3", {}, el("span", { class: "rank", textContent: `[${r.rank}]` }),
        r.title + (r.section ? ` › ${r.section}` : "")),
      el("div", { class: "meta" }, cite, "  ", meta.join(" · "), link ? "  " : null, link),
      el("p", { class: "highlight" }, el("mark", {}, flat(r.highlight))),
      passageBlock(r.text, r.highlight));
    list.append(item);
  }
}

async function runQuery(q, k) {
  message("検索中… Searching…");
  $("answer").hidden = true;
  closeReader();
  try {
    const data = await getJSON(`/api/query?q=${encodeURIComponent(q)}&k=${k}`);
    message("");
    renderResults(data);
    document.body.dataset.state = "results";
  } catch (e) {
    message("Error: " + e.message, true);
    document.body.dataset.state = "error";
  }
}

function lineDiv(no, text, cited) {
  return el("div", { class: "line" + (cited ? " cited" : ""), "data-line": String(no) },
    el("span", { class: "no", textContent: String(no) }),
    el("span", { class: "tx", textContent: text.replace(/\r?\n$|\r$/, "") }));
}

async function openReader(source, start, end, title) {
  const from = Math.max(1, start - 15);
  const reader = $("reader");
  try {
    const page = await getJSON(`/api/read?source=${encodeURIComponent(source)}&start=${from}`);
    readerState = { source, start, end, next: page.next_start_line };
    $("reader-title").textContent = page.title || title || source;
    $("reader-title").lang = langOf(page.title || "");
    $("reader-source").textContent = `${source}  (lines ${start}-${end} cited)`;
    const body = $("reader-body");
    body.replaceChildren();
    body.lang = langOf(page.text);
    appendLines(page);
    reader.hidden = false;
    const first = body.querySelector(".line.cited");
    if (first) {
      // Scroll the reader only (not the page, so the results stay where they were);
      // in the narrow layout the reader does not scroll itself, so the page does.
      if (reader.scrollHeight > reader.clientHeight) {
        const offset = first.getBoundingClientRect().top - reader.getBoundingClientRect().top;
        reader.scrollTop += offset - reader.clientHeight / 4;
      } else {
        first.scrollIntoView({ block: "center" });
      }
    }
    document.body.dataset.reader = source;
  } catch (e) {
    message("Error: " + e.message, true);
  }
}

function appendLines(page) {
  const body = $("reader-body");
  const lines = page.text.split(/(?<=\r\n|\r(?!\n)|\n)/);
  lines.forEach((t, i) => {
    const no = page.lines[0] + i;
    if (no > page.lines[1]) return;
    body.append(lineDiv(no, t, no >= readerState.start && no <= readerState.end));
  });
  readerState.next = page.next_start_line;
  $("reader-more").hidden = page.next_start_line == null;
}

async function readMore() {
  if (!readerState || readerState.next == null) return;
  const page = await getJSON(
    `/api/read?source=${encodeURIComponent(readerState.source)}&start=${readerState.next}`);
  appendLines(page);
}

// Ask: POST /api/ask streams server-sent events: passages, note, delta*, done | error.
async function runAsk(q, k) {
  closeReader();
  $("answer").hidden = false;
  const text = $("answer-text");
  text.replaceChildren();
  $("answer-note").hidden = true;
  let raw = "";
  message("回答を生成中… Generating…");
  try {
    const r = await fetch("/api/ask", { method: "POST",
      headers: headers({ "Content-Type": "application/json" }),
      body: JSON.stringify({ q, k: Number(k) }) });
    if (!r.ok) {
      const data = await r.json().catch(() => ({}));
      throw new Error(data.error || "HTTP " + r.status);
    }
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        const ev = (block.match(/^event: (.*)$/m) || [])[1];
        const data = JSON.parse((block.match(/^data: (.*)$/m) || [])[1] || "null");
        if (ev === "passages") renderResults(data);
        else if (ev === "note") { $("answer-note").textContent = data.message; $("answer-note").hidden = false; }
        else if (ev === "delta") { raw += data.text; text.textContent = raw; }
        else if (ev === "done") showAnswer(data);
        else if (ev === "error") throw new Error(data.error);
      }
    }
    message("");
  } catch (e) {
    message("Error: " + e.message, true);
  }
}

// The checked answer, with each [n] a link to passage n.
function showAnswer(data) {
  const text = $("answer-text");
  text.replaceChildren();
  text.lang = langOf(data.answer);
  const parts = data.answer.split(/(\[\d+\])/);
  for (const part of parts) {
    const m = part.match(/^\[(\d+)\]$/);
    if (m) {
      const a = el("a", { href: "#r-" + m[1], textContent: part, className: "cite-link" });
      text.append(a);
    } else text.append(part);
  }
  const notes = [];
  if (data.dropped && data.dropped.length) notes.push("Removed citations: " + data.dropped.join(" "));
  if (data.unverified_quotes && data.unverified_quotes.length)
    notes.push("Quotes not found in the cited passage: " + data.unverified_quotes.join(" / "));
  if (notes.length) {
    const n = $("answer-note");
    n.textContent = (n.hidden ? "" : n.textContent + " ") + notes.join(". ");
    n.hidden = false;
  }
  document.body.dataset.state = "answered";
}

function submit(ask) {
  const q = $("q").value.trim();
  if (!q) return;
  const k = $("k").value;
  const url = new URL(location.href);
  url.searchParams.set("q", q);
  url.searchParams.set("k", k);
  history.replaceState(null, "", url.pathname + url.search + url.hash);
  if (ask) runAsk(q, k); else runQuery(q, k);
}

document.addEventListener("DOMContentLoaded", () => {
  token();
  $("ask-form").addEventListener("submit", (e) => { e.preventDefault(); submit(false); });
  $("ask-btn").addEventListener("click", () => submit(true));
  $("reader-close").addEventListener("click", closeReader);
  $("reader-more").addEventListener("click", readMore);
  const params = new URLSearchParams(location.search);
  const q = params.get("q");
  if (params.get("k")) setK(params.get("k"));
  if (q) { $("q").value = q; runQuery(q, $("k").value); }
  else document.body.dataset.state = "ready";
});
