// The agent console: log in, go ready, get the case on screen the instant a debtor is
// connected, follow the case's activity stream live, record the disposition.
import { api, ApiError, Live } from "./api.js";
import { Softphone } from "./softphone.js";
import { renderCase, renderTimeline, prependActivity } from "./case_card.js";

const $ = (selector) => document.querySelector(selector);
const state = {
  user: null, live: null, softphone: null, caseId: null, attemptKey: null, cursor: null,
  agentState: "logged_out", preview: null,
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
  $("#disposition").hidden = !(agent.state === "wrap_up" && state.attemptKey);
  state.agentState = agent.state;
  $("#dial").disabled = BUSY.has(agent.state) || !$("#dial-phone").options.length;
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
  fillPauseReasons(me.pause_reasons);
  setAgentState(me.agent);
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
  if (data.type === "preview") {
    await openCase(data.case_id, null);
    state.preview = data.lead_id;
    $("#preview-text").textContent = data.summary || `Preview: ${data.number}`;
    $("#preview-bar").hidden = false;
  }
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
    fillOutcomes(card.allowed_statuses || []);
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
  if (form.get("callback_at")) body.callback_at = new Date(form.get("callback_at")).toISOString();
  try {
    await api("POST", `/api/calls/${encodeURIComponent(state.attemptKey)}/disposition`, body);
    event.target.reset();
    state.attemptKey = null;
    $("#disposition").hidden = true;
    $("#call-banner").textContent = "";
    status("Disposition saved");
  } catch (error) {
    status(error.message, true);
  }
}

async function logout() {
  await requestState("logout").catch(() => {});
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
  try {
    const me = await api("GET", "/api/me");
    await start(me);
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) status(error.message, true);
    show("login");
  }
});
