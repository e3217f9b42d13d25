// Rendering of the case card and its activity stream. Text only goes in through
// textContent, never innerHTML, so debtor-supplied text cannot inject markup.

import { api } from "./api.js";

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function row(label, value) {
  const tr = el("tr");
  tr.append(el("th", label), el("td", value ?? "—"));
  return tr;
}

function phoneText(phone) {
  const flags = [];
  if (!phone.active) flags.push("wrong number");
  if (phone.do_not_call) flags.push("DNC");
  if (phone.consent && phone.consent !== "unknown") flags.push(`consent ${phone.consent}`);
  return flags.length ? `${phone.e164} (${flags.join(", ")})` : phone.e164;
}

// A phone with its contact controls: do not call, wrong number, consent. The server
// decides who may lift a restriction; its answer replaces the phone's line.
function phoneItem(card, phone) {
  const li = el("li", null, "phone");
  li.dataset.phoneId = phone.id;
  const label = el("span", phoneText(phone), "number");
  const message = el("span", null, "phone-message");
  const send = async (change) => {
    try {
      const changed = await api("POST", `/api/cases/${card.id}/phones/${phone.id}`, change);
      Object.assign(phone, changed);
      li.replaceWith(phoneItem(card, phone));
    } catch (error) {
      message.textContent = error.message;
    }
  };
  const dnc = el("button", phone.do_not_call ? "Allow calls" : "Do not call");
  dnc.type = "button";
  dnc.addEventListener("click", () => send({ do_not_call: !phone.do_not_call }));
  const wrong = el("button", phone.active ? "Wrong number" : "Not wrong");
  wrong.type = "button";
  wrong.addEventListener("click", () => send({ wrong_number: phone.active }));
  const consent = el("select");
  consent.setAttribute("aria-label", `Consent for ${phone.e164}`);
  for (const value of ["unknown", "granted", "revoked"]) {
    const option = el("option", `consent ${value}`);
    option.value = value;
    option.selected = phone.consent === value;
    consent.append(option);
  }
  consent.addEventListener("change", () => send({ consent: consent.value }));
  li.append(label, dnc, wrong, consent, message);
  return li;
}

export function renderCase(container, card) {
  const debtor = card.debtor || {};
  const name = debtor.company_name || [debtor.first_name, debtor.last_name].filter(Boolean).join(" ");
  const table = el("table", null, "case-facts");
  table.append(
    row("Case", `${card.reference ?? card.id}`),
    row("Debtor", name),
    row("Status", (card.status_label || card.status) + (card.contactable === false ? " (do not contact)" : "")),
    row("Balance", card.balance !== undefined ? `${card.balance} ${card.currency || ""}` : null),
    row("Emails", (card.emails || []).map((e) => e.address).join(", ")),
  );
  const promises = el("ul", null, "promises");
  for (const p of card.promises || []) promises.append(el("li", `${p.amount} due ${p.due_date} (${p.status})`));
  const phones = el("ul", null, "phones");
  for (const phone of card.phones || []) phones.append(phoneItem(card, phone));
  container.replaceChildren(
    el("h2", name || `Case ${card.id}`), table, el("h3", "Phones"), phones, el("h3", "Promises"), promises,
  );
  container.dataset.caseId = card.id;
}

function activityItem(activity) {
  const li = el("li", null, `activity ${activity.kind}`);
  li.dataset.activityId = activity.id;
  const when = new Date(activity.occurred_at).toLocaleString();
  li.append(
    el("span", `${activity.channel} ${activity.direction}`, "meta"),
    el("time", when),
    el("p", activity.summary, "summary"),
  );
  if (activity.body) li.append(el("p", activity.body, "body"));
  return li;
}

export function renderTimeline(list, items, append = false) {
  if (!append) list.replaceChildren();
  for (const activity of items) list.append(activityItem(activity));
}

export function prependActivity(list, activity) {
  if (list.querySelector(`[data-activity-id="${activity.id}"]`)) return;
  list.prepend(activityItem(activity));
}
