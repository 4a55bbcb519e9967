// pryvrt dashboard: log in (or open a shared link), browse channels/folders/events of a time
// window, record events, and refresh live on Socket.IO notifications. No build step.
import { io } from "./vendor/socket.io-4.8.1.esm.min.js";
import uPlot from "./vendor/uPlot-1.6.32.esm.js";

const $ = (sel) => document.querySelector(sel);
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  for (const child of children) node.append(child);
  return node;
};

// No credential is ever stored by this page (localStorage, sessionStorage, JS cookies): a
// login's session lives in an HttpOnly cookie the page cannot read, sent by the browser and
// accepted by the server only with the X-Pryvrt-CSRF header from this origin. A shared
// link's token is kept in memory only.
const state = {
  username: null,
  token: null, // a shared link's token (mode "token"); never stored
  mode: null, // "session" (the cookie) | "token"
  channels: [],
  channel: null, // selected channel id
  folders: [], // tree
  folder: null, // selected folder id (filters the list)
  events: [],
  socket: null,
  chart: null,
};

class ApiError extends Error {
  constructor(id, message, data) {
    super(message);
    this.id = id;
    this.data = data;
  }
}

// ---- API -------------------------------------------------------------------------------

async function api(method, path, body, { form } = {}) {
  // The header tells the server this request is the page's own (the cookie counts only then).
  const headers = { "X-Pryvrt-CSRF": "1" };
  if (state.mode === "token") headers.Authorization = state.token;
  let payload;
  if (form) payload = form;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(`/${state.username}${path}`, { method, headers, body: payload });
  } catch (err) {
    throw new ApiError("NETWORK_ERROR", `the server cannot be reached (${err.message})`);
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    throw new ApiError("INVALID_RESPONSE", `unexpected answer (${res.status})`);
  }
  if (!res.ok) {
    throw new ApiError(data?.id ?? `HTTP_${res.status}`, data?.message ?? res.statusText, data?.data);
  }
  return data;
}

function showError(err) {
  const box = $("#error");
  if (!err) {
    box.hidden = true;
    return;
  }
  const detail = err.data && typeof err.data === "object" ? ` ${JSON.stringify(err.data)}` : "";
  box.textContent = `${err.message}${err.id ? ` (${err.id})` : ""}${detail}`;
  box.hidden = false;
  console.error(err);
}

// Run an action; show its error instead of swallowing it.
async function guard(action) {
  try {
    await action();
    showError(null);
  } catch (err) {
    showError(err);
    if (err.id === "INVALID_TOKEN" && state.mode === "session") logout(false);
  }
}

// ---- login / session -------------------------------------------------------------------

// Earlier versions kept the session id in localStorage: end those sessions and drop them.
const LEGACY_PREFIX = "pryvrt:session:";
function forgetStoredSessions() {
  for (const key of Object.keys(localStorage)) {
    if (!key.startsWith(LEGACY_PREFIX)) continue;
    const id = localStorage.getItem(key);
    const user = key.slice(LEGACY_PREFIX.length);
    localStorage.removeItem(key);
    if (id && user) {
      fetch(`/${encodeURIComponent(user)}/logout`, { method: "POST", headers: { Authorization: id } }).catch(() => {});
    }
  }
}

function usernameFromLocation() {
  const first = location.pathname.split("/").filter(Boolean)[0];
  if (first && first !== "static") return decodeURIComponent(first).toLowerCase();
  return new URLSearchParams(location.search).get("userName");
}

async function start() {
  forgetStoredSessions();
  state.username = usernameFromLocation();
  const params = new URLSearchParams(location.search);
  const token = params.get("auth");
  if (token) {
    // A shared link: the token stays in memory, and leaves the address bar and this
    // history entry (a reload then needs the link again).
    params.delete("auth");
    const rest = params.toString();
    history.replaceState(null, "", `${location.pathname}${rest ? `?${rest}` : ""}${location.hash}`);
  }
  if (token && state.username) {
    state.token = token;
    state.mode = "token";
  } else if (state.username) {
    state.mode = "session"; // logged in if the browser holds this user's cookie
  }
  if (state.mode) {
    try {
      await enter();
      return;
    } catch (err) {
      const silent = state.mode === "session" && err.id === "INVALID_TOKEN"; // not logged in
      state.token = null;
      state.mode = null;
      if (!silent) showError(err);
    }
  }
  showLogin();
}

function showLogin() {
  $("#dashboard").hidden = true;
  $("#logout").hidden = true;
  $("#login").hidden = false;
  if (state.username) $("#login-username").value = state.username;
}

async function login(event) {
  event.preventDefault();
  const username = $("#login-username").value.trim().toLowerCase();
  const password = $("#login-password").value;
  await guard(async () => {
    if (username !== state.username) {
      // the dashboard lives at /{username}/: go there, keeping nothing else
      state.username = username;
      history.replaceState(null, "", `/${encodeURIComponent(username)}/`);
    }
    state.token = null;
    state.mode = "session";
    // The answer carries no session id: the server sets the HttpOnly cookie.
    await api("POST", "/dashboard/login", { userName: username, password, appId: "pryvrt-dashboard" });
    $("#login-password").value = "";
    await enter();
  });
}

async function logout(callServer = true) {
  if (callServer && state.mode === "session") {
    try {
      await api("POST", "/dashboard/logout"); // ends the session and clears the cookie
    } catch (err) {
      showError(err);
    }
  }
  state.socket?.disconnect();
  state.socket = null;
  state.token = null;
  state.mode = null;
  setConnection("offline");
  showLogin();
}

async function enter() {
  await loadChannels();
  $("#login").hidden = true;
  $("#dashboard").hidden = false;
  $("#logout").hidden = state.mode !== "session";
  $("#who").textContent = `— ${state.username}${state.mode === "token" ? " (shared link)" : ""}`;
  setWindow(86400);
  connectLive();
}

// ---- live updates ----------------------------------------------------------------------

function setConnection(text) {
  const badge = $("#conn-state");
  badge.dataset.state = text;
  badge.textContent = text;
}

function connectLive() {
  state.socket?.disconnect();
  // Session mode sends no auth: the browser sends the cookie with the handshake and the
  // server accepts it because the handshake's Origin is its own.
  const socket = io(`${location.origin}/${state.username}`, {
    auth: state.mode === "token" ? { token: state.token } : undefined,
    transports: ["websocket"],
  });
  state.socket = socket;
  socket.on("connect", () => setConnection("connected"));
  socket.on("disconnect", () => setConnection("reconnecting"));
  socket.io.on("reconnect_attempt", () => setConnection("reconnecting"));
  socket.on("connect_error", (err) => {
    setConnection("reconnecting");
    if (err?.data?.id === "INVALID_TOKEN") {
      showError(new ApiError("INVALID_TOKEN", "the live connection was refused: credential no longer valid"));
    }
  });
  socket.on("channelsChanged", () => refreshSoon("channels"));
  socket.on("foldersChanged", (msg) => msg?.channelId === state.channel && refreshSoon("folders"));
  socket.on("eventsChanged", (msg) => msg?.channelId === state.channel && refreshSoon("events"));
}

const pending = new Set();
let refreshTimer = null;
function refreshSoon(what) {
  pending.add(what);
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => {
    const todo = new Set(pending);
    pending.clear();
    guard(async () => {
      if (todo.has("channels")) await loadChannels();
      if (todo.has("folders")) await loadFolders();
      if (todo.has("events") || todo.has("folders")) await loadEvents();
    });
  }, 30);
}

// ---- channels and folders --------------------------------------------------------------

async function loadChannels() {
  state.channels = await api("GET", "/channels");
  if (!state.channels.some((c) => c.id === state.channel)) {
    state.channel = state.channels[0]?.id ?? null;
    state.folder = null;
  }
  renderChannels();
  await loadFolders();
  await loadEvents();
}

function renderChannels() {
  const list = $("#channels");
  list.replaceChildren(
    ...state.channels.map((c) => {
      const item = el("li", { textContent: c.name, className: c.id === state.channel ? "selected" : "" });
      item.dataset.id = c.id;
      item.addEventListener("click", () => selectChannel(c.id));
      return item;
    }),
  );
}

async function selectChannel(id) {
  state.channel = id;
  state.folder = null;
  renderChannels();
  await guard(async () => {
    await loadFolders();
    await loadEvents();
  });
}

async function loadFolders() {
  state.folders = state.channel ? await api("GET", `/${state.channel}/folders`) : [];
  renderFolders();
}

function flatFolders(tree, depth = 0, out = []) {
  for (const f of tree) {
    out.push({ ...f, depth });
    flatFolders(f.children ?? [], depth + 1, out);
  }
  return out;
}

function renderFolders() {
  const build = (folders) =>
    folders.map((f) => {
      const label = el("span", { textContent: f.name, className: f.id === state.folder ? "selected" : "" });
      label.dataset.id = f.id;
      label.addEventListener("click", () => {
        state.folder = state.folder === f.id ? null : f.id;
        renderFolders();
        guard(loadEvents);
      });
      const item = el("li", {}, label);
      if (f.children?.length) item.append(el("ul", {}, ...build(f.children)));
      return item;
    });
  $("#folders").replaceChildren(...build(state.folders));
  const flat = flatFolders(state.folders);
  const options = (blank) => [
    el("option", { value: "", textContent: blank }),
    ...flat.map((f) => el("option", { value: f.id, textContent: `${"· ".repeat(f.depth)}${f.name}` })),
  ];
  $("#folder-parent").replaceChildren(...options("(root)"));
  for (const select of document.querySelectorAll(".folder-select")) {
    const keep = select.value;
    select.replaceChildren(...options(select.id === "period-folder" ? "(choose a folder)" : "(no folder)"));
    if (flat.some((f) => f.id === keep)) select.value = keep;
    else if (state.folder) select.value = state.folder;
  }
}

// ---- events ----------------------------------------------------------------------------

const toInput = (seconds) => {
  const d = new Date(seconds * 1000);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 19);
};
const fromInput = (value) => new Date(value).getTime() / 1000;

function setWindow(seconds) {
  const now = Date.now() / 1000;
  $("#from-time").value = toInput(now - seconds);
  $("#to-time").value = "";
  $("#to-time").placeholder = "now";
  state.windowSeconds = seconds;
}

function timeWindow() {
  const to = $("#to-time").value ? fromInput($("#to-time").value) : Date.now() / 1000 + 60;
  const from = $("#from-time").value ? fromInput($("#from-time").value) : to - 86400;
  return { from, to };
}

async function loadEvents() {
  if (!state.channel) {
    state.events = [];
    renderEvents();
    return;
  }
  const { from, to } = timeWindow();
  const query = new URLSearchParams({ fromTime: String(from), toTime: String(to), limit: "500" });
  if (state.folder) query.append("onlyFolders", state.folder);
  state.events = await api("GET", `/${state.channel}/events?${query}`);
  renderEvents();
  renderChart();
}

const fmtTime = (t) => new Date(t * 1000).toLocaleString();
function fmtDuration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h ? `${h}h ` : ""}${m}m ${s % 60}s`;
}

function describe(ev) {
  const value = ev.value;
  if (value && typeof value === "object" && "value" in value) {
    const shown = typeof value.value === "object" ? JSON.stringify(value.value) : String(value.value);
    return `${value.type ?? ev.type ?? ""}: ${shown}`;
  }
  if (ev.type) return ev.type;
  return ev.description ?? (ev.duration !== undefined ? "period" : "mark");
}

function folderName(id) {
  return flatFolders(state.folders).find((f) => f.id === id)?.name ?? "";
}

function renderEvents() {
  $("#events-count").textContent = `(${state.events.length})`;
  $("#events").replaceChildren(
    ...state.events.map((ev) => {
      const main = el("div", {}, el("div", { className: "what", textContent: describe(ev) }));
      if (ev.folderId) main.append(el("div", { className: "muted", textContent: `in ${folderName(ev.folderId)}` }));
      if (ev.tags?.length) main.append(el("div", { className: "tags" }, ...ev.tags.map((t) => el("span", { textContent: t }))));
      if (ev.duration === null) {
        const timer = el("div", { className: "running" });
        timer.dataset.runningSince = String(ev.time);
        main.append(timer);
      } else if (typeof ev.duration === "number") {
        main.append(el("div", { className: "muted", textContent: `duration ${fmtDuration(ev.duration)}` }));
      }
      for (const att of ev.attachments ?? []) {
        const url = `/${state.username}/${state.channel}/events/${ev.id}/${encodeURIComponent(att.fileName)}?readToken=${encodeURIComponent(att.readToken)}`;
        if ((att.type ?? "").startsWith("image/")) main.append(el("img", { src: url, alt: att.fileName }));
        else main.append(el("a", { href: url, textContent: att.fileName }));
      }
      const actions = el("div");
      if (ev.duration === null) {
        const stop = el("button", { textContent: "Stop" });
        stop.addEventListener("click", () => guard(() => api("POST", `/${state.channel}/events/stop`, { id: ev.id })));
        actions.append(stop);
      }
      const trash = el("button", { textContent: "Trash", className: "trash" });
      trash.addEventListener("click", () => guard(() => api("DELETE", `/${state.channel}/events/${ev.id}`)));
      actions.append(trash);
      const item = el("li", {}, el("div", { className: "time", textContent: fmtTime(ev.time) }), main, actions);
      item.dataset.id = ev.id;
      return item;
    }),
  );
  tickTimers();
}

function tickTimers() {
  const now = Date.now() / 1000;
  for (const node of document.querySelectorAll("[data-running-since]")) {
    node.textContent = `running ${fmtDuration(now - Number(node.dataset.runningSince))}`;
  }
}
setInterval(tickTimers, 1000);

function renderChart() {
  const folder = $("#chart-folder").value || null;
  const points = state.events
    .filter((ev) => typeof ev.value?.value === "number" && (!folder || ev.folderId === folder))
    .map((ev) => [ev.time, ev.value.value])
    .sort((a, b) => a[0] - b[0]);
  state.chart?.destroy();
  state.chart = null;
  const box = $("#chart");
  box.replaceChildren();
  if (points.length < 1) {
    box.append(el("p", { className: "muted", textContent: "No numeric values in this window." }));
    return;
  }
  const width = Math.max(300, box.clientWidth || 600);
  state.chart = new uPlot(
    {
      width,
      height: 200,
      series: [{}, { label: "value", stroke: "#2f6fde", width: 2, points: { show: points.length < 60 } }],
      axes: [{}, {}],
    },
    [points.map((p) => p[0]), points.map((p) => p[1])],
    box,
  );
}

// ---- recording -------------------------------------------------------------------------

function tagsOf(input) {
  return input.value
    .split(",")
    .map((t) => t.trim())
    .filter(Boolean);
}

async function recordNote(event) {
  event.preventDefault();
  await guard(async () => {
    const kind = $("#note-kind").value;
    const text = $("#note-text").value;
    let value;
    if (kind === "value") {
      const number = Number(text);
      if (!Number.isFinite(number)) throw new ApiError("INVALID_PARAMETERS_FORMAT", "a value must be a number");
      value = { type: $("#note-type").value.trim() || "count:generic", value: number };
    } else {
      value = { type: "note:txt", value: text };
    }
    const body = { value, tags: tagsOf($("#note-tags")), folderId: $("#note-folder").value || null };
    await api("POST", `/${state.channel}/events`, body);
    $("#note-text").value = "";
    await loadEvents();
  });
}

async function startPeriod(event) {
  event.preventDefault();
  await guard(async () => {
    const folderId = $("#period-folder").value;
    if (!folderId) throw new ApiError("MISSING_FOLDER", "choose a folder to start a period in");
    await api("POST", `/${state.channel}/events/start`, { folderId });
    await loadEvents();
  });
}

async function stopPeriod() {
  await guard(async () => {
    await api("POST", `/${state.channel}/events/stop`, {});
    await loadEvents();
  });
}

async function uploadPhoto(event) {
  event.preventDefault();
  await guard(async () => {
    const file = $("#photo-file").files[0];
    if (!file) throw new ApiError("MISSING_PARAMETER", "choose a file");
    const form = new FormData();
    const meta = { value: { type: "picture:attached", value: file.name }, folderId: $("#photo-folder").value || null };
    form.append("event", new Blob([JSON.stringify(meta)], { type: "application/json" }), "event.json");
    form.append("file", file, file.name);
    await api("POST", `/${state.channel}/events`, undefined, { form });
    $("#photo-file").value = "";
    await loadEvents();
  });
}

async function createChannel(event) {
  event.preventDefault();
  await guard(async () => {
    const { id } = await api("POST", "/channels", { name: $("#channel-name").value.trim() });
    $("#channel-name").value = "";
    state.channel = id;
    await loadChannels();
  });
}

async function createFolder(event) {
  event.preventDefault();
  await guard(async () => {
    if (!state.channel) throw new ApiError("UNKNOWN_CHANNEL", "create or choose a channel first");
    const body = { name: $("#folder-name").value.trim(), parentId: $("#folder-parent").value || null };
    await api("POST", `/${state.channel}/folders`, body);
    $("#folder-name").value = "";
    await loadFolders();
  });
}

// ---- wiring ----------------------------------------------------------------------------

$("#login-form").addEventListener("submit", login);
$("#logout").addEventListener("click", () => logout(true));
$("#channel-form").addEventListener("submit", createChannel);
$("#folder-form").addEventListener("submit", createFolder);
$("#note-form").addEventListener("submit", recordNote);
$("#note-kind").addEventListener("change", () => {
  $("#note-type").hidden = $("#note-kind").value !== "value";
});
$("#period-form").addEventListener("submit", startPeriod);
$("#period-stop").addEventListener("click", stopPeriod);
$("#photo-form").addEventListener("submit", uploadPhoto);
$("#chart-folder").addEventListener("change", renderChart);
for (const input of ["#from-time", "#to-time"]) $(input).addEventListener("change", () => guard(loadEvents));
for (const button of document.querySelectorAll("[data-window]")) {
  button.addEventListener("click", () => {
    setWindow(Number(button.dataset.window));
    guard(loadEvents);
  });
}

start();
