// The demo notification center of `notify local`: notify.js in a page.
//
// Query parameters: sub (default "demo") and groups (default "team:plant-3")
// choose the demo user; backoff, cap, failAfter, ping and maxAge (ms) tune the
// client (the browser tests use short backoffs).
import { NotifyClient } from "./notify.js";

const params = new URLSearchParams(location.search);
const sub = params.get("sub") || "demo";
const groups = (params.get("groups") ?? "team:plant-3").split(",").map((g) => g.trim()).filter(Boolean);
const tuning = Object.fromEntries(
  [["backoff", "backoffBase"], ["cap", "backoffCap"], ["failAfter", "failAfter"], ["ping", "pingInterval"], ["maxAge", "maxAge"]]
    .filter(([q]) => params.has(q))
    .map(([q, option]) => [option, Number(params.get(q))]),
);

const $ = (sel) => document.querySelector(sel);
const list = $("#list");
const items = new Map(); // id → {n, el, read}
let unread = 0;
let initialSync = true; // before the first "open": the latest notifications, each with its read state

// ---- the client ----

let lastToken = "";
const wsURL = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/`;
const client = new NotifyClient(wsURL, {
  // A fresh token before each (re)connect. When the server can't be reached (or
  // is starting) the socket can't open either: hand back the last token and let
  // the client back off. Only a refusal (4xx) throws, which stops the client
  // with status "unauthorized".
  token: async () => {
    const q = new URLSearchParams({ sub, groups: groups.join(",") });
    for (let attempt = 1; ; attempt++) {
      let res = null;
      try {
        res = await fetch(`/dev/token?${q}`, { cache: "no-store" });
      } catch {
        // unreachable: below
      }
      const body = res ? await res.json().catch(() => ({})) : {};
      if (res?.ok && body.token) return (lastToken = body.token);
      if (res && res.status < 500) throw new Error(body.error || `token: HTTP ${res.status}`);
      if (lastToken) return lastToken;
      if (attempt === 10) throw new Error(body.error || "token: the server can't be reached");
      await new Promise((resolve) => setTimeout(resolve, 300 * attempt));
    }
  },
  ...tuning,
});

client.on("notification", (n) => {
  // n.read is this user's state: as the sync said (after a reload too), false when live.
  add(n, initialSync);
  if (!initialSync && !n.read) toast(n);
});
client.on("unread", (count) => {
  unread = count;
  if (count === 0) for (const id of items.keys()) setRead(id, true);
  render();
});
client.on("read", ({ ids }) => {
  if (ids.length === 0) for (const id of items.keys()) setRead(id, true); // "mark all read"
  for (const id of ids) setRead(id, true);
  render();
});
client.on("status", (s) => {
  if (s === "open") initialSync = false;
  const labels = {
    connecting: "Connecting…", open: "Live", reconnecting: "Reconnecting…",
    failing: "Can't connect — retrying", unauthorized: "Signed out", closed: "Offline",
  };
  $("#status").dataset.status = s;
  $("#status-text").textContent = labels[s] ?? s;
  render();
});
client.on("gap", () => ($("#gap").hidden = false));
client.on("disconnected", ({ code, reason }) => {
  // "revoked": signed out elsewhere; the client reconnects with a fresh token by itself.
  if (code === "revoked") toastText("Signed out by the server", reason || "Reconnecting with a fresh token…");
  if (code === "too_many_connections") $("#displaced").hidden = false; // the client stops: "Offline"
});
client.on("error", (err) => console.warn("notify:", err.message));
client.connect();
window.notifyClient = client; // for the console (and curious developers)

// ---- the list ----

const TYPES = {
  "workorder.assigned": { label: "Assigned", icon: '<path d="M9 11a3.5 3.5 0 1 0 0-7 3.5 3.5 0 0 0 0 7z"/><path d="M3 20a6 6 0 0 1 12 0"/><path d="M18 8v6M15 11h6"/>' },
  "workorder.status": { label: "Status changed", icon: '<path d="M4 12a8 8 0 0 1 14-5.3L20 9"/><path d="M20 4v5h-5"/><path d="M20 12a8 8 0 0 1-14 5.3L4 15"/><path d="M4 20v-5h5"/>' },
  "workorder.comment": { label: "Comment", icon: '<path d="M4 5h16v11H9l-5 4z"/><path d="M8 9h8M8 12h5"/>' },
  "workorder.deadline": { label: "Deadline", icon: '<circle cx="12" cy="13" r="7.5"/><path d="M12 9v4l2.5 2"/><path d="M9 2.5h6"/>' },
};
const OTHER = { label: "Update", icon: '<path d="M6 16V11a6 6 0 1 1 12 0v5l1.5 2h-15z"/><path d="M10 20a2 2 0 0 0 4 0"/>' };

function kind(n) {
  return TYPES[n.type] ?? OTHER;
}

function add(n, fromInitialSync) {
  if (items.has(n.id)) return;
  const el = document.createElement("li");
  el.className = "item";
  el.dataset.id = n.id;
  el.dataset.type = n.type.replace(/[^a-z0-9]+/gi, "-");
  const k = kind(n);
  const wo = n.data && typeof n.data.workOrderId === "string" ? n.data.workOrderId : "";
  el.innerHTML = `
    <span class="icon" aria-hidden="true"><svg viewBox="0 0 24 24">${k.icon}</svg></span>
    <div class="content">
      <div class="meta"><span class="kind"></span><span class="wo"></span><time></time></div>
      <div class="title"></div>
      <div class="body"></div>
    </div>
    <button class="mark-read" type="button" title="Mark as read" aria-label="Mark as read">
      <svg viewBox="0 0 24 24" aria-hidden="true"><path d="M5 12.5l4.5 4.5L19 7.5"/></svg>
    </button>`;
  el.querySelector(".kind").textContent = k.label;
  el.querySelector(".wo").textContent = wo;
  el.querySelector(".wo").hidden = !wo;
  el.querySelector(".title").textContent = n.title || k.label;
  el.querySelector(".body").textContent = n.body || "";
  el.querySelector(".body").hidden = !n.body;
  const time = el.querySelector("time");
  time.dateTime = n.createdAt;
  time.title = new Date(n.createdAt).toLocaleString();
  el.querySelector(".mark-read").addEventListener("click", (ev) => {
    ev.stopPropagation();
    markRead([n.id]);
  });
  el.addEventListener("click", () => markRead([n.id]));
  const read = n.read === true;
  items.set(n.id, { n, el, read });
  // Newest first: insert before the first item with a smaller id.
  const next = [...list.children].find((li) => li.dataset.id < n.id);
  list.insertBefore(el, next ?? null);
  setRead(n.id, read);
  if (!fromInitialSync) {
    el.classList.add("fresh");
    setTimeout(() => el.classList.remove("fresh"), 1600);
  }
  render();
}

function setRead(id, read) {
  const it = items.get(id);
  if (!it) return;
  it.read = read;
  it.el.classList.toggle("unread", !read);
  it.el.querySelector(".mark-read").hidden = read;
}

async function markRead(ids) {
  ids = ids.filter((id) => items.get(id) && !items.get(id).read);
  if (ids.length === 0) return;
  ids.forEach((id) => setRead(id, true)); // optimistic; the answer sets the count
  render();
  try {
    await client.markRead(ids);
  } catch (err) {
    ids.forEach((id) => setRead(id, false));
    render();
    toastText("Couldn't mark as read", err.message);
  }
}

$("#mark-all").addEventListener("click", async () => {
  for (const id of items.keys()) setRead(id, true);
  render();
  try {
    await client.markAllRead();
  } catch (err) {
    toastText("Couldn't mark all as read", err.message);
  }
});
$("#bell").addEventListener("click", () => {
  $("#panel").scrollIntoView({ behavior: "smooth", block: "start" });
  list.querySelector(".item.unread")?.focus?.();
});

function render() {
  const badge = $("#badge");
  badge.hidden = unread === 0;
  badge.textContent = unread >= 100 ? "99+" : String(unread);
  $("#bell").setAttribute("aria-label", `Notifications, ${unread} unread`);
  $("#mark-all").disabled = unread === 0 && ![...items.values()].some((it) => !it.read);
  const loading = initialSync && client.status !== "open";
  $("#empty").hidden = items.size > 0 || loading;
  $("#inbox-summary").textContent = loading && items.size === 0
    ? "Loading your notifications…"
    : unread === 0 ? "No unread notifications" : `${unread >= 100 ? "100+" : unread} unread`;
  document.title = unread > 0 ? `(${unread >= 100 ? "99+" : unread}) Notifications · Work orders` : "Notifications · Work orders";
  updateTimes();
}

// ---- relative times ----

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
function relative(iso) {
  const s = (Date.parse(iso) - Date.now()) / 1000;
  const a = Math.abs(s);
  if (a < 45) return "just now";
  if (a < 3600) return rtf.format(Math.round(s / 60), "minute");
  if (a < 86400) return rtf.format(Math.round(s / 3600), "hour");
  if (a < 7 * 86400) return rtf.format(Math.round(s / 86400), "day");
  return new Date(iso).toLocaleDateString(undefined, { month: "short", day: "numeric" });
}
function updateTimes() {
  for (const { n, el } of items.values()) el.querySelector("time").textContent = relative(n.createdAt);
}
setInterval(updateTimes, 30_000);

// ---- toasts ----

function toast(n) {
  const k = kind(n);
  const wo = n.data && typeof n.data.workOrderId === "string" ? n.data.workOrderId : "";
  toastText(n.title || k.label, [k.label, wo].filter(Boolean).join(" · "), n.type);
}

function toastText(title, detail, type = "") {
  const el = document.createElement("div");
  el.className = "toast";
  el.dataset.type = type.replace(/[^a-z0-9]+/gi, "-");
  el.innerHTML = `<div class="toast-title"></div><div class="toast-detail"></div>`;
  el.querySelector(".toast-title").textContent = title;
  el.querySelector(".toast-detail").textContent = detail;
  const box = $("#toasts");
  box.append(el);
  while (box.children.length > 3) box.firstElementChild.remove();
  setTimeout(() => el.classList.add("leaving"), 4500);
  setTimeout(() => el.remove(), 5000);
}

// ---- the publish form ----

const form = $("#publish");
const samples = {
  "workorder.assigned": (wo) => [`${wo} assigned to you`, "Pump P-7 is leaking at plant 3, bay 2. Priority: high."],
  "workorder.status": (wo) => [`${wo} moved to In progress`, "Sam Patel started work on site."],
  "workorder.comment": (wo) => [`New comment on ${wo}`, "Alex Kim: Seal replaced; waiting on parts for the coupling."],
  "workorder.deadline": (wo) => [`${wo} is due in 2 hours`, "The maintenance window closes at 16:00."],
};
let edited = false; // leave the title and message alone once the user typed
function suggest() {
  if (edited) return;
  const [title, body] = samples[form.type.value](form.workOrderId.value.trim() || "WO-1042");
  form.title.value = title;
  form.body.value = body;
}
form.type.addEventListener("change", suggest);
form.workOrderId.addEventListener("input", suggest);
form.title.addEventListener("input", () => (edited = true));
form.body.addEventListener("input", () => (edited = true));
$("#group-label").textContent = groups[0] ? `Group ${groups[0]}` : "Group";
$("#avatar").textContent = sub.slice(0, 1).toUpperCase();
$("#avatar").title = `Signed in as ${sub}${groups.length ? ` (${groups.join(", ")})` : ""}`;
suggest();

form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const to = form.to.value;
  const request = {
    notification: {
      type: form.type.value,
      title: form.title.value.trim() || undefined,
      body: form.body.value.trim() || undefined,
      data: form.workOrderId.value.trim() ? { workOrderId: form.workOrderId.value.trim() } : {},
    },
  };
  if (to === "me") request.users = [sub];
  else if (to === "group") request.groups = groups.slice(0, 1);
  else request.broadcast = true;
  const send = $("#send");
  send.disabled = true;
  try {
    // The local stack's Lambda Invoke API (same origin; it accepts any credentials).
    const res = await fetch("/2015-03-31/functions/PublishFunction/invocations", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(request),
    });
    const out = await res.json().catch(() => ({}));
    if (!res.ok || res.headers.has("X-Amz-Function-Error")) {
      showResult(false, `${out.errorType || out.Type || `HTTP ${res.status}`}: ${out.errorMessage || out.message || "failed"}`);
    } else {
      const stats = [`${out.delivered} delivered`, `${out.gone} gone`, `${out.failed} failed`];
      if (out.offlineUsers?.length) stats.push(`offline: ${out.offlineUsers.join(", ")}`);
      const conns = `${out.connections} connection${out.connections === 1 ? "" : "s"}`;
      showResult(true, `Reached ${conns}`, stats, out.id, out.delivered);
    }
  } catch (err) {
    showResult(false, err.message);
  } finally {
    send.disabled = false;
  }
});

function showResult(ok, text, stats = [], id = "", delivered = "") {
  const el = $("#result");
  el.hidden = false;
  el.className = `result ${ok ? "ok" : "err"}`;
  el.dataset.delivered = ok ? String(delivered) : "";
  el.innerHTML = `<strong></strong><span class="result-text"></span><span class="stats"></span><code class="result-id"></code>`;
  el.querySelector("strong").textContent = ok ? "Published" : "Not published";
  el.querySelector(".result-text").textContent = text;
  for (const s of stats) {
    const chip = document.createElement("span");
    chip.textContent = s;
    el.querySelector(".stats").append(chip);
  }
  el.querySelector(".result-id").textContent = id;
  el.querySelector(".result-id").hidden = !id;
}

render();
