// Rendering of the case card and its activity stream. Text only goes in through
// textContent, never innerHTML, so debtor-supplied text cannot inject markup.

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

export function renderCase(container, card) {
  const debtor = card.debtor || {};
  const name = debtor.company_name || [debtor.first_name, debtor.last_name].filter(Boolean).join(" ");
  const table = el("table", null, "case-facts");
  table.append(
    row("Case", `${card.reference ?? card.id}`),
    row("Debtor", name),
    row("Status", card.status_label || card.status),
    row("Balance", card.balance !== undefined ? `${card.balance} ${card.currency || ""}` : null),
    row("Phones", (card.phones || []).map((p) => p.e164 + (p.do_not_call ? " (DNC)" : "")).join(", ")),
    row("Emails", (card.emails || []).map((e) => e.address).join(", ")),
  );
  const promises = el("ul", null, "promises");
  for (const p of card.promises || []) promises.append(el("li", `${p.amount} due ${p.due_date} (${p.status})`));
  container.replaceChildren(el("h2", name || `Case ${card.id}`), table, el("h3", "Promises"), promises);
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
