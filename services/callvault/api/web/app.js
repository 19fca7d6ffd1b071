// The coaches' page: a token in this tab's sessionStorage, the JSON API, an <audio> player.
// Every text from the API goes in with textContent, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { token: sessionStorage.getItem("callvault-token"), cursor: null, selected: null, searches: 0 };

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${state.token}`, ...(options.headers || {}) };
  const answer = await fetch(path, { ...options, headers });
  const body = await answer.json().catch(() => ({}));
  if (!answer.ok) {
    const error = new Error(body.error || `the API answered ${answer.status}`);
    error.status = answer.status;
    throw error;
  }
  return body;
}

function show(id, visible) { $(id).hidden = !visible; }
function text(id, value) { $(id).textContent = value ?? "—"; }
function isoDay(d) { return d.toISOString().slice(0, 10); }
function when(t) { return t ? t.replace("T", " ").replace(/\.\d+/, "").replace("Z", " UTC") : null; }
function days(n) { return n === null || n === undefined ? "—" : `${n} day${n === 1 ? "" : "s"}`; }

async function logIn(token) {
  state.token = token;
  const me = await api("/api/v1/whoami");
  sessionStorage.setItem("callvault-token", token);
  text("whoami", `${me.subject} (${me.role})`);
  const tenant = $("tenant");
  tenant.replaceChildren();
  const everyone = me.tenants.includes("*");
  const choices = everyone ? [["", "all tenants"]] : [["", "all of mine"], ...me.tenants.map((t) => [t, t])];
  for (const [value, label] of choices) {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = label;
    tenant.append(option);
  }
  const today = new Date();
  $("to").value = isoDay(today);
  $("from").value = isoDay(new Date(today.getTime() - 6 * 86400000));
  show("login-panel", false);
  show("session", true);
  show("calls-panel", true);
  await search(false);
}

function logOut() {
  sessionStorage.removeItem("callvault-token");
  state.token = null;
  location.reload();
}

async function search(more) {
  text("search-error", "");
  const params = new URLSearchParams();
  for (const [name, id] of [["tenant", "tenant"], ["from", "from"], ["to", "to"], ["agent", "agent"],
    ["outcome", "outcome"], ["call_id", "call-id"]]) {
    const value = $(id).value.trim();
    if (value) params.set(name, value);
  }
  if (more && state.cursor) params.set("cursor", state.cursor);
  const body = $("results").tBodies[0];
  const mine = ++state.searches; // a newer search (or click) wins over one still running
  try {
    const page = await api(`/api/v1/calls?${params}`);
    if (mine !== state.searches) return;
    if (!more) body.replaceChildren();
    for (const call of page.calls) body.append(row(call));
    state.cursor = page.next_cursor;
    show("more", Boolean(page.next_cursor));
    text("result-count", `${body.rows.length} call${body.rows.length === 1 ? "" : "s"}`);
    const unreadable = page.unreadable || [];
    if (unreadable.length) {
      text("search-error", `left out, their stored metadata does not open under the client's key ` +
        `(altered in the store?): ${unreadable.join(", ")}; tell the operators`);
    }
  } catch (error) {
    text("search-error", error.message);
  }
}

function row(call) {
  const tr = document.createElement("tr");
  tr.dataset.href = call.href;
  tr.dataset.callId = call.call_id;
  const cells = call.restricted
    ? [call.day, call.started_at?.slice(11, 19), call.call_id, "restricted", "", "", "", ""]
    : [call.day, call.started_at?.slice(11, 19), call.call_id, call.agent_id,
      call.duration_s == null ? "" : `${Math.round(call.duration_s)} s`, call.outcome,
      call.disclosure_verdict, days(call.recording_days_left)];
  for (const value of cells) {
    const td = document.createElement("td");
    td.textContent = value ?? "";
    tr.append(td);
  }
  if (call.restricted) tr.classList.add("restricted");
  tr.addEventListener("click", () => select(call, tr));
  return tr;
}

function select(call, tr) {
  for (const other of $("results").tBodies[0].rows) other.classList.remove("selected");
  tr.classList.add("selected");
  state.selected = call;
  text("detail-call", call.call_id);
  text("detail-error", "");
  show("detail-body", false);
  const player = $("player");
  player.pause();
  player.removeAttribute("src");
  show("player", false);
  show("detail", true);
  $("purpose").focus();
}

// The recording's pauses (card payments) as spans on a bar as long as the recording.
function showPauses(rec) {
  const pauses = rec?.pauses ?? [];
  const bar = $("d-timeline");
  bar.replaceChildren();
  const secs = (ms) => (ms / 1000).toFixed(1);
  text("d-pauses", pauses.length
    ? pauses.map((p) => `${secs(p.start_ms)}–${secs(p.end_ms)} s (${p.mode}${p.resumed ? "" : ", never resumed"})`).join("; ")
    : "none");
  const length = rec?.started_at && rec?.ended_at ? Date.parse(rec.ended_at) - Date.parse(rec.started_at) : 0;
  if (!pauses.length || length <= 0) { show("d-timeline", false); return; }
  for (const p of pauses) {
    const span = document.createElement("span");
    span.className = "pause";
    span.style.left = `${Math.min(100, (100 * p.start_ms) / length)}%`;
    span.style.width = `${Math.max(0.5, Math.min(100, (100 * (p.end_ms - p.start_ms)) / length))}%`;
    span.title = `paused ${secs(p.start_ms)}–${secs(p.end_ms)} s`;
    bar.append(span);
  }
  show("d-timeline", true);
}

async function openCall() {
  const call = state.selected;
  const purpose = $("purpose").value.trim();
  text("detail-error", "");
  try {
    const detail = await api(`${call.href}?purpose=${encodeURIComponent(purpose)}`);
    text("d-agent", detail.agent_id);
    text("d-started", when(detail.started_at));
    text("d-duration", detail.duration_s == null ? null : `${detail.duration_s} s`);
    const d = detail.disclosure;
    text("disclosure", d ? `${d.verdict}: prompt ${d.prompt_id ?? "?"} played at ${when(d.played_at) ?? "?"}` : "no recording reported");
    const rec = detail.recording;
    text("d-recording", rec ? `${rec.outcome}, ${rec.content_type ?? ""}, ${rec.size_bytes ?? "?"} bytes` : null);
    text("days-left", rec ? days(rec.days_left) : null);
    showPauses(rec);
    text("d-meta-left", days(detail.metadata_days_left));
    show("detail-body", true);
    if (detail.audio_href) {
      const link = await api(`${call.href}/audio-link`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ purpose }),
      });
      const player = $("player");
      player.src = link.url;
      show("player", true);
    }
  } catch (error) {
    text("detail-error", error.message);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", async (event) => {
    event.preventDefault();
    text("login-error", "");
    try {
      await logIn($("token").value.trim());
    } catch (error) {
      state.token = null;
      text("login-error", error.message);
    }
  });
  $("logout").addEventListener("click", logOut);
  $("filters").addEventListener("submit", (event) => { event.preventDefault(); search(false); });
  $("more").addEventListener("click", () => search(true));
  $("open-form").addEventListener("submit", (event) => { event.preventDefault(); openCall(); });
  if (state.token) logIn(state.token).catch(() => logOut());
});
