// The agent console: log in, go ready, get the case on screen the instant a debtor is
// connected, follow the case's activity stream live, record the disposition.
// The disposition form belongs to its call, not to the case on screen: it stays open until
// saved, through the end of the wrap-up time, a pause, or the next call.
import { api, ApiError, Live } from "./api.js";
import { Softphone } from "./softphone.js";
import { renderCase, renderTimeline, prependActivity } from "./case_card.js";

const $ = (selector) => document.querySelector(selector);
const state = {
  user: null, live: null, softphone: null, caseId: null, attemptKey: null, cursor: null,
  agentState: "logged_out", preview: null,
  // Calls waiting for their disposition, oldest first: {key, caseId, label, statuses}.
  pending: [],
  wrapDeadline: null, // performance.now() when wrap-up time runs out
};
const BUSY = new Set(["reserved", "on_call", "wrap_up", "logged_out"]);

function show(id) {
  for (const section of document.querySelectorAll("[data-screen]")) {
    section.hidden = section.dataset.screen !== id;
  }
}

function status(text, isError = false) {
  const el = $("#status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

function setAgentState(agent) {
  $("#agent-state").textContent = agent.state.replace("_", " ");
  $("#agent-state").dataset.state = agent.state;
  $("#pause-reason").hidden = agent.state !== "paused";
  $("#pause-reason").textContent = agent.pause_reason || "";
  state.agentState = agent.state;
  $("#dial").disabled = BUSY.has(agent.state) || !$("#dial-phone").options.length;
  showWrapUp(agent);
  if (agent.state === "wrap_up" && agent.attempt_key) awaitDisposition(agent.attempt_key, agent.case_id);
}

// Wrap-up: the time left, counted down; "more time"; "pause after this call".
function showWrapUp(agent) {
  const wrapping = agent.state === "wrap_up" && agent.wrap_up_seconds_left != null;
  state.wrapDeadline = wrapping ? performance.now() + agent.wrap_up_seconds_left * 1000 : null;
  $("#wrap-bar").hidden = !wrapping;
  $("#wrap-extend").disabled = !(agent.wrap_up_extend_left > 0);
  tick();
  const onCall = ["reserved", "on_call", "wrap_up"].includes(agent.state);
  $("#pause-after-call").hidden = !onCall;
  $("#pause-after-call").textContent = agent.pause_after_call ? "Cancel pause after call" : "Pause after this call";
  $("#pause-after-call").dataset.active = agent.pause_after_call ? "yes" : "";
  $("#pause-after-note").hidden = !(onCall && agent.pause_after_call);
  $("#pause-after-note").textContent = agent.pause_after_call ? `Pausing after this call (${agent.pause_after_call})` : "";
}

function tick() {
  if (state.wrapDeadline === null) return;
  const left = Math.max(0, Math.ceil((state.wrapDeadline - performance.now()) / 1000));
  $("#wrap-countdown").textContent = `Wrap-up: ${left} s left`;
}

async function extendWrapUp() {
  try {
    const reply = await state.live.request({ type: "agent.wrap_up.extend", seconds: 30 });
    setAgentState(reply.agent);
  } catch (error) {
    status(error.message, true);
  }
}

async function togglePauseAfterCall() {
  const active = $("#pause-after-call").dataset.active === "yes";
  const reason = active ? null : $("#pause-select").value;
  try {
    const reply = await state.live.request({ type: "agent.pause_after_call", reason });
    setAgentState(reply.agent);
  } catch (error) {
    status(error.message, true);
  }
}

// A call that needs its disposition: kept (with its case's outcomes) until saved.
async function awaitDisposition(key, caseId) {
  if (!key || !caseId || state.pending.some((p) => p.key === key)) return;
  const entry = { key, caseId, label: `case ${caseId}`, statuses: [] };
  state.pending.push(entry);
  try {
    const card = await api("GET", `/api/cases/${caseId}`);
    entry.label = card.reference || entry.label;
    entry.statuses = card.allowed_statuses || [];
  } catch (error) {
    status(`could not load case ${caseId}: ${error.message}`, true);
  }
  showDisposition();
}

function showDisposition() {
  const current = state.pending[0];
  $("#disposition").hidden = !current;
  $("#case").hidden = $("#case").hidden && !current;
  if (!current || $("#disposition-form").dataset.key === current.key) return;
  $("#disposition-form").dataset.key = current.key;
  $("#disposition-form").reset();
  $("#disposition-case").textContent = current.label;
  fillOutcomes(current.statuses);
}

async function login(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  try {
    const body = await api("POST", "/api/login", {
      username: form.get("username"),
      password: form.get("password"),
    });
    await start(body.user);
  } catch (error) {
    status(error.message, true);
  }
}

async function start(user) {
  state.user = user;
  $("#agent-name").textContent = `${user.display_name} (${user.role})`;
  show("console");
  status("");
  const live = new Live();
  state.live = live;
  live.onStatus = (s) => ($("#link-state").textContent = s);
  live.on("agent", (topic, data) => agentEvent(data));
  live.on("case", (topic, data) => caseEvent(topic, data));
  await live.connect();
  await live.follow(`agent:${user.id}`);
  const me = await api("GET", "/api/agents/me");
  setAgentState(me.agent);
  fillPauseReasons(me.pause_reasons);
  for (const call of me.undisposed || []) await awaitDisposition(call.attempt_key, call.case_id);
  const mine = await api("GET", "/api/agents/me/callbacks").catch(() => ({ callbacks: [] }));
  const due = mine.callbacks.find((c) => c.due);
  if (due) showCallback({ case_id: due.case_id, reference: due.reference });
  if (me.agent.case_id) await openCase(me.agent.case_id, me.agent.attempt_key);
  try {
    const config = await api("GET", "/api/agents/me/softphone");
    state.softphone = new Softphone(config, (s) => ($("#softphone-state").textContent = s));
    state.softphone.start();
  } catch (error) {
    $("#softphone-state").textContent = `unavailable: ${error.message}`;
  }
}

function fillPauseReasons(reasons) {
  const select = $("#pause-select");
  select.replaceChildren();
  for (const name of Object.keys(reasons)) {
    const option = document.createElement("option");
    option.value = name;
    option.textContent = name;
    select.append(option);
  }
}

async function requestState(wanted, reason) {
  try {
    const reply = await state.live.request({ type: "agent.state", state: wanted, reason });
    setAgentState(reply.agent);
  } catch (error) {
    status(error.message, true);
  }
}

async function agentEvent(data) {
  if (data.type === "agent.state") setAgentState(data.agent);
  if (data.type === "screen_pop") {
    await openCase(data.case_id, data.attempt_key);
    $("#call-banner").textContent = data.summary || "Connected";
  }
  if (data.type === "callback_due") showCallback(data);
  if (data.type === "preview") {
    await openCase(data.case_id, null);
    state.preview = data.lead_id;
    $("#preview-text").textContent = data.summary || `Preview: ${data.number}`;
    $("#preview-bar").hidden = false;
  }
}

// A personal callback whose time has come: the case, with "Call now".
function showCallback(callback) {
  state.callback = callback;
  $("#callback-text").textContent = callback.summary || `Callback due: ${callback.reference}`;
  $("#callback-bar").hidden = false;
}

async function callBack(callNow) {
  const callback = state.callback;
  if (!callback) return;
  $("#callback-bar").hidden = true;
  state.callback = null;
  await openCase(callback.case_id, null);
  if (callNow) await dial();
}

async function preview(action) {
  const lead = state.preview;
  if (lead === null) return;
  try {
    await api("POST", `/api/previews/${lead}/${action}`);
    state.preview = null;
    $("#preview-bar").hidden = true;
  } catch (error) {
    status(error.message, true);
  }
}

async function dial() {
  const phoneId = Number($("#dial-phone").value);
  try {
    await api("POST", `/api/cases/${state.caseId}/call`, phoneId ? { phone_id: phoneId } : {});
    status("");
  } catch (error) {
    status(error.message, true);
  }
}

function fillPhones(phones) {
  const select = $("#dial-phone");
  select.replaceChildren();
  for (const phone of phones || []) {
    if (phone.do_not_call || !phone.active || phone.consent === "revoked") continue;
    const option = document.createElement("option");
    option.value = phone.id;
    option.textContent = `${phone.e164} (${phone.kind})`;
    select.append(option);
  }
  $("#dial").disabled = BUSY.has(state.agentState) || !select.options.length;
}

async function find(event) {
  event.preventDefault();
  const text = new FormData(event.target).get("q").trim();
  const list = $("#find-results");
  list.replaceChildren();
  if (!text) {
    list.hidden = true;
    return;
  }
  try {
    const page = await api("GET", `/api/cases?limit=10&filter=${encodeURIComponent(JSON.stringify({ text }))}`);
    for (const item of page.items) {
      const entry = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      const name = item.company_name || [item.first_name, item.last_name].filter(Boolean).join(" ");
      button.textContent = `${item.reference} — ${name} — ${item.status} — ${item.balance} ${item.currency}`;
      button.addEventListener("click", async () => {
        list.hidden = true;
        await openCase(item.id, null);
      });
      entry.append(button);
      list.append(entry);
    }
    if (!page.items.length) list.append(Object.assign(document.createElement("li"), { textContent: "No case found" }));
    list.hidden = false;
  } catch (error) {
    status(error.message, true);
  }
}

async function openCase(caseId, attemptKey) {
  if (state.caseId && state.caseId !== caseId) await state.live.unfollow(`case:${state.caseId}`).catch(() => {});
  state.caseId = caseId;
  state.attemptKey = attemptKey || null;
  try {
    const card = await api("GET", `/api/cases/${caseId}`);
    renderCase($("#case-card"), card);
    fillPhones(card.phones);
    const page = await api("GET", `/api/cases/${caseId}/activities?limit=50`);
    state.cursor = page.next_cursor;
    renderTimeline($("#timeline"), page.items);
    $("#more").hidden = !state.cursor;
    await state.live.follow(`case:${caseId}`);
    show("console");
    $("#case").hidden = false;
  } catch (error) {
    status(`could not open case ${caseId}: ${error.message}`, true);
  }
}

function fillOutcomes(statuses) {
  const select = $("#outcome");
  select.replaceChildren();
  for (const item of statuses) {
    const option = document.createElement("option");
    option.value = item.code || item;
    option.textContent = item.label || item;
    select.append(option);
  }
}

async function more() {
  const page = await api("GET", `/api/cases/${state.caseId}/activities?limit=50&cursor=${encodeURIComponent(state.cursor)}`);
  state.cursor = page.next_cursor;
  renderTimeline($("#timeline"), page.items, true);
  $("#more").hidden = !state.cursor;
}

function caseEvent(topic, data) {
  if (topic !== `case:${state.caseId}`) return;
  if (data.activity) prependActivity($("#timeline"), data.activity);
}

async function dispose(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const body = { status: form.get("outcome"), note: form.get("note") || null };
  if (form.get("promise_amount")) {
    body.promise = { amount: form.get("promise_amount"), due_date: form.get("promise_date") };
  }
  if (form.get("callback_at")) {
    body.callback_at = new Date(form.get("callback_at")).toISOString();
    body.callback_personal = !form.get("callback_campaign");
    body.campaigns_may_call = Boolean(form.get("campaigns_may_call"));
  }
  const current = state.pending[0];
  if (!current) return;
  try {
    await api("POST", `/api/calls/${encodeURIComponent(current.key)}/disposition`, body);
    state.pending.shift();
    event.target.reset();
    delete event.target.dataset.key;
    if (state.attemptKey === current.key) state.attemptKey = null;
    showDisposition();
    $("#call-banner").textContent = "";
    status("Disposition saved");
  } catch (error) {
    status(error.message, true);
  }
}

async function logout() {
  try {
    await state.live.request({ type: "agent.state", state: "logout" });
  } catch (error) {
    if (error.code === "on_call") {
      if (!window.confirm("You are on a call; log out anyway?")) return;
      await state.live.request({ type: "agent.state", state: "logout", confirm: true }).catch(() => {});
    }
  }
  await api("POST", "/api/logout").catch(() => {});
  if (state.softphone) state.softphone.stop();
  if (state.live) state.live.close();
  show("login");
}

document.addEventListener("DOMContentLoaded", async () => {
  $("#login-form").addEventListener("submit", login);
  $("#ready").addEventListener("click", () => requestState("ready"));
  $("#pause").addEventListener("click", () => requestState("pause", $("#pause-select").value));
  $("#logout").addEventListener("click", logout);
  $("#more").addEventListener("click", more);
  $("#disposition-form").addEventListener("submit", dispose);
  $("#find-form").addEventListener("submit", find);
  $("#dial").addEventListener("click", dial);
  $("#preview-call").addEventListener("click", () => preview("call"));
  $("#preview-skip").addEventListener("click", () => preview("skip"));
  $("#wrap-extend").addEventListener("click", extendWrapUp);
  $("#callback-call").addEventListener("click", () => callBack(true));
  $("#callback-open").addEventListener("click", () => callBack(false));
  $("#pause-after-call").addEventListener("click", togglePauseAfterCall);
  setInterval(tick, 250);
  try {
    const me = await api("GET", "/api/me");
    await start(me);
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) status(error.message, true);
    show("login");
  }
});
