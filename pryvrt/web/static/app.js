// pryvrt dashboard: log in (or open a shared link), browse the channels, folders and events of
// a time window (list, timeline, charts), record and edit events, restore them from the trash,
// and stay live on Socket.IO notifications (everything visible is fetched again on every
// (re)connection). Plain modules, no build step.
import { io } from "./vendor/socket.io-4.8.1.esm.min.js";
import { drawTimeline, tickTimeline } from "./timeline.js";
import { clearSeries, drawCharts, drawSeries, seriesWidth, splitType } from "./charts.js";

const $ = (sel) => document.querySelector(sel);
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
};

// No credential is ever stored by this page (localStorage, sessionStorage, JS cookies): a
// login's session lives in an HttpOnly cookie the page cannot read, sent by the browser and
// accepted by the server only with the X-Pryvrt-CSRF header from this origin. A shared
// link's token is kept in memory only. localStorage holds the last channel viewed, nothing else.
const EMPTY = () => ({
  access: null, // tokens.getAccessInfo: what the credential may do
  names: new Map(), // accessId → token name (who changed what)
  channels: [],
  channel: null, // selected channel id
  folders: [], // tree
  folder: null, // folder filter (with its sub-folders)
  events: [],
  trash: [],
  shares: [], // shares.get: shares other users delivered to this user (session only)
  bookmarks: [], // bookmarks.get
  series: null, // the series event charted: {channel, event, field}
});
const state = {
  username: null,
  token: null, // a shared link's token (mode "token"); never stored
  mode: null, // "session" (the cookie) | "token"
  view: "events", // | "trash"
  windowSeconds: 86400, // null: a window chosen with the date fields
  editing: null, // id of the event edited in place
  socket: null,
  link: null, // the socket: "connecting" | "connected" | "down"
  netTrouble: false, // the last request could not reach the server
  loadedAt: null,
  ...EMPTY(),
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
    res = await fetch(`/${encodeURIComponent(state.username)}${path}`, { method, headers, body: payload });
  } catch (err) {
    state.netTrouble = true;
    renderConnection();
    throw new ApiError("NETWORK_ERROR", `the server cannot be reached (${err.message})`);
  }
  if (state.netTrouble) {
    state.netTrouble = false;
    renderConnection();
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
  $("#error-text").textContent = `${err.message}${err.id ? ` (${err.id})` : ""}${detail}`;
  box.hidden = false;
  console.warn(err);
}

let toastTimer = null;
function toast(text, action) {
  clearTimeout(toastTimer);
  $("#toast-text").textContent = text;
  const button = $("#toast-action");
  button.hidden = !action;
  button.onclick = null;
  if (action) {
    button.textContent = action.label;
    button.onclick = () => {
      $("#toast").hidden = true;
      guard(action.run);
    };
  }
  $("#toast").hidden = false;
  toastTimer = setTimeout(() => ($("#toast").hidden = true), action ? 10_000 : 4_000);
}

// Run an action; show its error instead of swallowing it. A credential that stopped working
// ends the dashboard; an unreachable server shows as offline (the banner), not as an error.
async function guard(action) {
  try {
    await action();
    showError(null);
    return true;
  } catch (err) {
    if (err.id === "INVALID_TOKEN" && state.mode) credentialEnded();
    else if (err.id === "NETWORK_ERROR") showError(null);
    else showError(err);
    return false;
  }
}

// ---- what the credential may do --------------------------------------------------------

const LEVELS = { read: 1, contribute: 2, manage: 3 };
const isFull = () => ["session", "personal"].includes(state.access?.type);
const matching = (channelId) =>
  (state.access?.permissions ?? []).filter((p) => p.channelId === "*" || p.channelId === channelId);

function channelLevel(channelId) {
  if (isFull()) return 3;
  return Math.max(0, ...matching(channelId).filter((p) => !p.folderPermissions).map((p) => LEVELS[p.level] ?? 0));
}

function ancestors(folderId) {
  const parents = new Map(flatFolders(state.folders).map((f) => [f.id, f.parentId ?? null]));
  const out = [];
  for (let id = parents.get(folderId); id; id = parents.get(id)) out.push(id);
  return out;
}

/** The level on a folder's events (null: events with no folder), as the server computes it. */
function folderLevel(channelId, folderId) {
  let best = channelLevel(channelId);
  const path = folderId ? [folderId, ...ancestors(folderId)] : [null];
  for (const p of matching(channelId)) {
    for (const grant of p.folderPermissions ?? []) {
      if (path.includes(grant.folderId ?? null)) best = Math.max(best, LEVELS[grant.level] ?? 0);
    }
  }
  return best;
}

function bestLevel(channelId) {
  let best = channelLevel(channelId);
  for (const p of matching(channelId)) for (const g of p.folderPermissions ?? []) best = Math.max(best, LEVELS[g.level] ?? 0);
  return best;
}

const can = {
  channels: () => isFull(),
  share: () => isFull() && !!state.channel, // tokens.create: a session or a personal token
  shares: () => state.access?.type === "session", // shares.*, bookmarks.*: a session only
  contribute: () => !!state.channel && bestLevel(state.channel) >= 2,
  manage: () => !!state.channel && bestLevel(state.channel) >= 3,
};

function applyCapabilities() {
  for (const node of document.querySelectorAll("[data-needs]")) node.hidden = !can[node.dataset.needs]();
  if (state.view === "trash" && !can.contribute()) setView("events");
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

const UI_PREFIX = "pryvrt:ui:"; // the last channel viewed, per user (no credential)
function remembered() {
  try {
    return JSON.parse(localStorage.getItem(UI_PREFIX + state.username) ?? "{}");
  } catch {
    return {};
  }
}
function remember() {
  if (state.mode !== "session" || !state.channel) return;
  localStorage.setItem(UI_PREFIX + state.username, JSON.stringify({ channel: state.channel }));
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
      if (state.mode === "token" && err.id === "INVALID_TOKEN") {
        showEnded();
        return;
      }
      const silent = state.mode === "session" && err.id === "INVALID_TOKEN"; // not logged in
      state.token = null;
      state.mode = null;
      if (!silent) showError(err);
    }
  }
  showLogin();
}

function setPhase(phase) {
  $("#login").hidden = phase !== "login";
  $("#ended").hidden = phase !== "ended";
  $("#dashboard").hidden = phase !== "dashboard";
  $("#logout").hidden = !(phase === "dashboard" && state.mode === "session");
  document.body.dataset.phase = phase;
}

/** Forget every piece of data and empty every list: nothing of a user stays on screen. */
function clearData() {
  state.socket?.disconnect();
  state.socket = null;
  state.link = null;
  state.editing = null;
  Object.assign(state, EMPTY());
  for (const id of ["#channels", "#folders", "#events", "#trash", "#timeline", "#charts", "#folder-parent", "#shares", "#bookmarks"]) $(id).replaceChildren();
  closeSeries();
  $("#share-result").hidden = true;
  for (const select of document.querySelectorAll(".folder-select")) select.replaceChildren();
  for (const id of ["#events-count", "#trash-count", "#who"]) $(id).textContent = "";
  for (const id of ["#channels-empty", "#folders-empty", "#events-empty", "#trash-empty", "#filter", "#toast", "#shares-empty", "#bookmarks-empty"]) $(id).hidden = true;
  setView("events");
  renderConnection();
}

function showLogin(note) {
  clearData();
  state.token = null;
  state.mode = null;
  setPhase("login");
  $("#login-note").hidden = !note;
  $("#login-note").textContent = note ?? "";
  if (state.username) $("#login-username").value = state.username;
  renderConnection();
}

function showEnded() {
  clearData();
  state.token = null;
  state.mode = null;
  setPhase("ended");
  $("#ended-text").textContent =
    "Its token was deleted or no longer grants access, so nothing of it is shown any more. Ask whoever shared it for a new link.";
  renderConnection("ended");
  $("#ended-title").focus?.();
}

/** The credential stopped working (logged out elsewhere, expired, token deleted). */
function credentialEnded() {
  if (state.mode === "token") showEnded();
  else if (state.mode === "session") {
    showLogin("Your session ended (logged out elsewhere, password changed, or expired): log in again.");
  }
}

async function login(event) {
  event.preventDefault();
  const username = $("#login-username").value.trim().toLowerCase();
  const password = $("#login-password").value;
  try {
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
    showError(null);
    await enter();
  } catch (err) {
    state.mode = null;
    showError(err);
  }
}

async function logout() {
  if (state.mode === "session") {
    try {
      await api("POST", "/dashboard/logout"); // ends the session and clears the cookie
    } catch (err) {
      showError(err);
    }
  }
  showLogin();
}

async function enter() {
  await requestLoad(ALL, { channel: remembered().channel ?? null });
  setPhase("dashboard");
  $("#who").textContent = `— ${state.username}${state.mode === "token" ? " (shared link)" : ""}`;
  connectLive();
}

// ---- live updates ----------------------------------------------------------------------

/** The badge and the offline banner, from the socket's state and the last request's fate. */
function renderConnection(forced) {
  const badge = $("#conn-state");
  let text = "offline";
  if (forced) text = forced;
  else if (state.mode && state.socket) {
    if (state.link === "connected" && !state.netTrouble) text = "connected";
    else if (state.link === "connecting" && !state.netTrouble) text = "connecting";
    else text = "reconnecting";
  }
  badge.dataset.state = text;
  badge.textContent = {
    connected: "live",
    connecting: "connecting…",
    reconnecting: "offline, reconnecting…",
    offline: "offline",
    ended: "access ended",
  }[text];
  const banner = $("#banner");
  banner.hidden = text !== "reconnecting";
  if (text === "reconnecting") {
    const since = state.loadedAt ? ` Shown: the data as of ${new Date(state.loadedAt).toLocaleTimeString()}.` : "";
    banner.textContent = `Offline: the server cannot be reached; reconnecting.${since} Everything shown is fetched again when the connection is back.`;
  }
}

function connectLive() {
  state.socket?.disconnect();
  // Session mode sends no auth: the browser sends the cookie with the handshake and the
  // server accepts it because the handshake's Origin is its own.
  const socket = io(`${location.origin}/${state.username}`, {
    auth: state.mode === "token" ? { token: state.token } : undefined,
    transports: ["websocket"],
    reconnectionDelayMax: 3000,
  });
  state.socket = socket;
  state.link = "connecting";
  socket.on("connect", () => {
    state.link = "connected";
    renderConnection();
    // Whatever changed while the socket was down (or before it first connected) was never
    // notified to it: fetch everything visible again.
    guard(() => requestLoad(ALL));
    guard(loadShares);
  });
  socket.on("disconnect", (reason) => {
    if (socket !== state.socket) return;
    state.link = "down";
    renderConnection();
    if (reason === "io server disconnect") {
      // The server ended this socket (socket.io does not reconnect by itself then): its
      // credential ended (the new handshake is refused INVALID_TOKEN, which ends the page),
      // its permissions changed (the reconnection fetches everything with the new ones), or
      // the server is stopping (the manager retries until it is back).
      setTimeout(() => socket === state.socket && socket.connect(), 250);
    }
  });
  socket.on("connect_error", (err) => {
    if (socket !== state.socket) return;
    state.link = "down";
    if (err?.data?.id === "INVALID_TOKEN") {
      credentialEnded();
      return;
    }
    renderConnection();
  });
  socket.on("channelsChanged", () => guard(() => requestLoad(["channels"])));
  socket.on("foldersChanged", (msg) => msg?.channelId === state.channel && guard(() => requestLoad(["folders"])));
  socket.on("eventsChanged", (msg) => msg?.channelId === state.channel && guard(() => requestLoad(["events"])));
  socket.on("sharesChanged", () => guard(loadShares));
  // Points change a series event's duration too (no eventsChanged is sent for them): the
  // events are fetched again, and the series shown when it is the one named (without
  // eventId, a credential reaching some folders only: the series shown).
  socket.on("seriesChanged", (msg) => {
    if (msg?.channelId !== state.channel) return;
    const shown = state.series;
    const ours = shown && shown.channel === msg.channelId && (!msg.eventId || msg.eventId === shown.event.id);
    guard(() => requestLoad(ours ? ["events", "series"] : ["events"]));
  });
}

// ---- loading: one load at a time, requests in between merged into the next -------------

const ALL = ["access", "channels", "folders", "events"];
let pendingLoad = null;
let loading = false;

/** Fetch ``parts`` (and, with ``channel``, switch to it); resolves once shown. Nothing is
 * shown until every part arrived: a failed switch leaves the previous channel on screen. */
function requestLoad(parts, { channel } = {}) {
  if (!pendingLoad) pendingLoad = { parts: new Set(), channel: undefined, waiters: [] };
  for (const part of parts) pendingLoad.parts.add(part);
  if (channel !== undefined) pendingLoad.channel = channel;
  const done = new Promise((resolve, reject) => pendingLoad.waiters.push({ resolve, reject }));
  if (!loading) runLoads();
  return done;
}

async function runLoads() {
  loading = true;
  // Assistive technology (and the browser tests) learn that the events are being
  // replaced, and when the page is settled again.
  $("#content").setAttribute("aria-busy", "true");
  try {
    while (pendingLoad) {
      const job = pendingLoad;
      pendingLoad = null;
      try {
        await load(job);
        for (const w of job.waiters) w.resolve();
      } catch (err) {
        for (const w of job.waiters) w.reject(err);
      }
    }
  } finally {
    loading = false;
    $("#content").setAttribute("aria-busy", "false");
  }
}

async function load(job) {
  const parts = job.parts;
  const mode = state.mode;
  let { access, names, channels, folders, events, trash, folder } = state;
  let channel = job.channel === undefined ? state.channel : job.channel;
  if (parts.has("access")) {
    access = await api("GET", "/access-info");
    names = new Map();
    if (["session", "personal"].includes(access.type)) {
      try {
        for (const t of await api("GET", "/tokens")) names.set(t.accessId, t.name);
      } catch {
        // names are a nicety
      }
    }
  }
  if (parts.has("channels") || !channels.length) {
    channels = await api("GET", "/channels");
  }
  if (!channels.some((c) => c.id === channel)) channel = channels.some((c) => c.id === state.channel) ? state.channel : (channels[0]?.id ?? null);
  const switched = channel !== state.channel;
  if (switched) folder = null;
  const needFolders = switched || parts.has("folders") || parts.has("channels") || parts.has("access");
  const needEvents = needFolders || parts.has("events");
  const window = timeWindow();
  const fetches = [
    needFolders && channel ? api("GET", `/${channel}/folders`) : null,
    needEvents && channel ? api("GET", `/${channel}/events?${eventsQuery(window, folder, false)}`) : null,
    needEvents && channel && state.view === "trash" ? api("GET", `/${channel}/events?${eventsQuery(window, null, true)}`) : null,
  ];
  const [newFolders, newEvents, newTrash] = await Promise.all(fetches);
  if (mode !== state.mode) return; // logged out meanwhile: show nothing of it
  if (needFolders) folders = channel ? newFolders : [];
  if (folder && !flatFolders(folders).some((f) => f.id === folder)) folder = null;
  if (needEvents) events = channel ? newEvents : [];
  if (newTrash) trash = newTrash;
  else if (switched) trash = [];
  Object.assign(state, { access, names, channels, channel, folders, folder, events, trash, window, loadedAt: Date.now() });
  remember();
  applyCapabilities();
  renderChannels();
  if (needFolders) renderFolders();
  renderEvents();
  if (state.view === "trash") renderTrash();
  renderConnection();
  const shown = state.series;
  if (shown && shown.channel !== channel) closeSeries();
  else if (shown && needEvents) {
    // refetch the chart when its points changed (seriesChanged), on a (re)connection, or
    // when the event moved (its time is the chart's origin)
    const fresh = events.find((ev) => ev.id === shown.event.id);
    const moved = fresh && (fresh.time !== shown.event.time || fresh.duration !== shown.event.duration);
    if (fresh) shown.event = fresh;
    if (parts.has("series") || parts.has("access") || moved) guard(loadSeries);
  }
}

function eventsQuery({ from, to }, folder, trashed) {
  const query = new URLSearchParams({ fromTime: String(from), toTime: String(to + 60), limit: "1000" });
  if (folder) query.append("onlyFolders", folder);
  if (trashed) query.set("state", "trashed");
  return query;
}

// ---- channels and folders --------------------------------------------------------------

function renderChannels() {
  const list = $("#channels");
  list.replaceChildren(
    ...state.channels.map((c) => {
      const button = el("button", { type: "button", textContent: c.name, title: c.name });
      button.dataset.id = c.id;
      button.setAttribute("aria-current", String(c.id === state.channel));
      button.addEventListener("click", () => selectChannel(c.id));
      return el("li", {}, button);
    }),
  );
  const empty = $("#channels-empty");
  empty.hidden = state.channels.length > 0;
  empty.textContent = isFull() ? "No channels yet: add one below." : "This link shares no channel.";
}

async function selectChannel(id) {
  if (id === state.channel) return;
  state.editing = null;
  const ok = await guard(() => requestLoad(["folders", "events"], { channel: id }));
  if (!ok && state.link !== "connected") toast("Offline: the channel cannot be opened now.");
}

function flatFolders(tree, depth = 0, out = []) {
  for (const f of tree) {
    out.push({ ...f, depth });
    flatFolders(f.children ?? [], depth + 1, out);
  }
  return out;
}

function folderName(id) {
  if (!id) return "No folder";
  return flatFolders(state.folders).find((f) => f.id === id)?.name ?? "(a folder out of reach)";
}

function folderOptions(blank, minLevel, { allowBlank = true } = {}) {
  const flat = flatFolders(state.folders).filter((f) => folderLevel(state.channel, f.id) >= minLevel);
  const options = flat.map((f) => el("option", { value: f.id, textContent: `${"· ".repeat(f.depth)}${f.name}` }));
  if (allowBlank) options.unshift(el("option", { value: "", textContent: blank }));
  return options;
}

function renderFolders() {
  const build = (folders) =>
    folders.map((f) => {
      const button = el("button", { type: "button", textContent: f.name, title: f.name });
      button.dataset.id = f.id;
      button.setAttribute("aria-pressed", String(f.id === state.folder));
      button.addEventListener("click", () => {
        state.folder = state.folder === f.id ? null : f.id;
        renderFolders();
        guard(() => requestLoad(["events"]));
      });
      const item = el("li", {}, button);
      if (f.children?.length) item.append(el("ul", {}, ...build(f.children)));
      return item;
    });
  $("#folders").replaceChildren(...build(state.folders));
  const empty = $("#folders-empty");
  empty.hidden = state.folders.length > 0;
  empty.textContent = `No folders in this channel.${can.manage() ? " Add one below." : ""}`;
  $("#filter").hidden = !state.folder;
  $("#filter-text").textContent = state.folder ? `Showing ${folderName(state.folder)} and its sub-folders.` : "";

  // The record forms keep what the user chose there (a click in the tree only filters).
  const noFolderOk = folderLevel(state.channel, null) >= 2;
  const fill = (select, options) => {
    const keep = select.value;
    select.replaceChildren(...options);
    if ([...select.options].some((o) => o.value === keep)) select.value = keep;
  };
  fill($("#folder-parent"), folderOptions("(top level)", 3, { allowBlank: channelLevel(state.channel) >= 3 }));
  fill($("#note-folder"), folderOptions("No folder", 2, { allowBlank: noFolderOk }));
  fill($("#photo-folder"), folderOptions("No folder", 2, { allowBlank: noFolderOk }));
  fill($("#period-folder"), folderOptions("Choose a folder…", 2));
}

// ---- the time window -------------------------------------------------------------------

const toInput = (seconds) => {
  const d = new Date(seconds * 1000);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 19);
};
const fromInput = (value) => new Date(value).getTime() / 1000;

function setWindow(seconds) {
  state.windowSeconds = seconds;
  $("#to-time").value = "";
  $("#to-time").placeholder = "now";
  for (const b of document.querySelectorAll("[data-window]")) b.setAttribute("aria-pressed", String(Number(b.dataset.window) === seconds));
}

/** The window shown; a preset window follows now, so a page left open keeps showing "the last 24 h". */
function timeWindow() {
  const now = Date.now() / 1000;
  const to = $("#to-time").value ? fromInput($("#to-time").value) : now;
  let from;
  if (state.windowSeconds && !$("#to-time").value) {
    from = now - state.windowSeconds;
    $("#from-time").value = toInput(from);
  } else {
    from = $("#from-time").value ? fromInput($("#from-time").value) : to - 86400;
  }
  return { from, to, live: !$("#to-time").value };
}

// ---- events ----------------------------------------------------------------------------

const fmtTime = (t) => new Date(t * 1000).toLocaleString([], { dateStyle: "medium", timeStyle: "medium" });
function fmtDuration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h ? `${h}h ` : ""}${m}m ${s % 60}s`;
}

/** What an event says, in words: a note's text, "mass 71.2 kg", "position:wgs84: …". */
function describe(ev) {
  const value = ev.value;
  if (isSeries(ev)) return `series ${ev.type.slice("series:".length)}`;
  if (value && typeof value === "object" && "value" in value) {
    if (value.type === "note:txt" && typeof value.value === "string") return value.value;
    if (typeof value.value === "number") {
      const { quantity, unit } = splitType(value.type);
      return `${quantity} ${value.value}${unit ? ` ${unit}` : ""}`;
    }
    const shown = typeof value.value === "object" ? JSON.stringify(value.value) : String(value.value);
    return `${value.type ?? ev.type ?? ""}: ${shown}`;
  }
  if (ev.type) return ev.type;
  if (ev.description) return ev.description;
  if (ev.duration === undefined) return "mark";
  return ev.duration === null ? "running period" : "period";
}

function who(accessId) {
  if (!accessId) return null;
  if (accessId === state.access?.accessId) return "you";
  if (accessId === "system") return "the system";
  return state.names.get(accessId) ?? accessId;
}

/** "changed by X · time" when the server says who wrote (createdBy/modifiedBy, API.md §12). */
function authorship(ev) {
  if (!ev.modifiedBy && !ev.createdBy) return null;
  const changed = ev.modifiedBy && ev.modified !== undefined && ev.created !== undefined && ev.modified > ev.created;
  const text = changed
    ? `changed by ${who(ev.modifiedBy)} · ${fmtTime(ev.modified)}${ev.createdBy ? ` (created by ${who(ev.createdBy)})` : ""}`
    : `created by ${who(ev.createdBy ?? ev.modifiedBy)}`;
  return el("div", { className: "meta who", textContent: text });
}

function attachmentNodes(ev) {
  return (ev.attachments ?? []).map((att) => {
    const url = `/${encodeURIComponent(state.username)}/${state.channel}/events/${ev.id}/${encodeURIComponent(att.fileName)}?readToken=${encodeURIComponent(att.readToken)}`;
    if ((att.type ?? "").startsWith("image/")) return el("img", { src: url, alt: att.fileName });
    return el("a", { href: url, textContent: att.fileName });
  });
}

function eventBody(ev) {
  const main = el("div", { className: "body" }, el("div", { className: "what", textContent: describe(ev) }));
  if (ev.description && describe(ev) !== ev.description) main.append(el("div", { className: "description", textContent: ev.description }));
  main.append(el("div", { className: "meta", textContent: ev.folderId ? `in ${folderName(ev.folderId)}` : "no folder" }));
  if (ev.tags?.length) main.append(el("div", { className: "tags" }, ...ev.tags.map((t) => el("span", { textContent: t }))));
  if (ev.duration === null) {
    const timer = el("div", { className: "running-timer" });
    timer.dataset.runningSince = String(ev.time);
    main.append(timer);
  } else if (typeof ev.duration === "number") {
    main.append(el("div", { className: "meta", textContent: `duration ${fmtDuration(ev.duration)}` }));
  }
  main.append(...attachmentNodes(ev));
  const by = authorship(ev);
  if (by) main.append(by);
  return main;
}

function actionButton(text, label, onClick, className = "") {
  const button = el("button", { type: "button", textContent: text, className });
  button.setAttribute("aria-label", label);
  button.addEventListener("click", onClick);
  return button;
}

function renderEvents() {
  const { from, to, live } = state.window ?? timeWindow();
  $("#events-count").textContent = `(${state.events.length})`;
  const editingNode = state.editing ? $(`#events li[data-id="${CSS.escape(state.editing)}"]`) : null;
  if (state.editing && !state.events.some((ev) => ev.id === state.editing)) state.editing = null;
  $("#events").replaceChildren(
    ...state.events.map((ev) => {
      if (ev.id === state.editing && editingNode?.querySelector("form.edit")) return editingNode; // keep what is typed
      const short = `${describe(ev)}, ${fmtTime(ev.time)}`;
      const actions = el("div", { className: "actions" });
      if (isSeries(ev)) {
        const open = state.series?.event.id === ev.id;
        // a toggle: pressed while its chart is shown
        const chart = actionButton("Chart", `Chart ${short}`, () => (open ? closeSeries() : openSeries(ev)), "chart");
        chart.setAttribute("aria-pressed", String(open));
        actions.append(chart);
      }
      if (folderLevel(state.channel, ev.folderId) >= 2) {
        if (ev.duration === null) actions.append(actionButton("Stop", `Stop ${short}`, () => stopPeriod(ev.id)));
        actions.append(actionButton("Edit", `Edit ${short}`, () => startEdit(ev.id), "edit"));
        actions.append(actionButton("Trash", `Trash ${short}`, () => trashEvent(ev), "trash"));
      }
      const item = el("li", { tabIndex: -1 }, el("div", { className: "time" }, el("time", { dateTime: new Date(ev.time * 1000).toISOString(), textContent: fmtTime(ev.time) })), eventBody(ev), actions);
      item.dataset.id = ev.id;
      return item;
    }),
  );
  const empty = $("#events-empty");
  empty.hidden = state.events.length > 0;
  const where = state.folder ? ` in ${folderName(state.folder)}` : "";
  const hint = !state.channel ? "" : can.contribute() ? " Record something above, or choose a longer window." : " Choose a longer window.";
  empty.textContent = state.channel
    ? `Nothing recorded${where} between ${fmtTime(from)} and ${live ? "now" : fmtTime(to)}.${hint}`
    : "Choose a channel to see its events.";

  const lanesIds = new Set(state.events.map((ev) => ev.folderId ?? null));
  const lanes = flatFolders(state.folders).filter((f) => lanesIds.has(f.id)).map((f) => ({ id: f.id, name: f.name }));
  if (lanesIds.has(null)) lanes.push({ id: null, name: "No folder" });
  for (const id of lanesIds) if (id && !lanes.some((l) => l.id === id)) lanes.push({ id, name: folderName(id) });
  if (state.events.length) {
    // A window that ends now gets room on the right for the running bars to grow into
    // until the next refetch (a preset window moves every minute).
    const end = live ? to + Math.max(90, (to - from) * 0.03) : to;
    drawTimeline($("#timeline"), { from, to: end, events: state.events, lanes, describe });
  } else {
    $("#timeline").replaceChildren(el("p", { className: "empty", textContent: "Nothing in this window." }));
  }
  drawCharts($("#charts"), {
    events: state.events,
    folderName,
    emptyText: "No numeric values in this window: record a Value (e.g. type mass:kg) to see its chart.",
  });
  tick();
}

function tick() {
  const now = Date.now() / 1000;
  for (const node of document.querySelectorAll(".running-timer[data-running-since]")) {
    node.textContent = `running ${fmtDuration(now - Number(node.dataset.runningSince))}`;
  }
  tickTimeline($("#timeline"));
}
setInterval(tick, 1000);
// A preset window follows now: every minute, the window moves (and refetches).
setInterval(() => {
  if (state.mode && state.windowSeconds && !$("#to-time").value && !$("#dashboard").hidden) guard(() => requestLoad(["events"]));
}, 60_000);

let lastTimelineWidth = 0;
new ResizeObserver(() => {
  const width = $("#timeline").clientWidth;
  if (width && Math.abs(width - lastTimelineWidth) > 2 && state.events.length && state.window) {
    lastTimelineWidth = width;
    renderEvents();
  }
}).observe($("#timeline"));

// ---- editing in place ------------------------------------------------------------------

function field(label, input) {
  input.id = `edit-${label.toLowerCase().replace(/\W+/g, "-")}`;
  return [el("label", { htmlFor: input.id, textContent: label }), input];
}

function startEdit(id) {
  const ev = state.events.find((e) => e.id === id);
  const item = $(`#events li[data-id="${CSS.escape(id)}"]`);
  if (!ev || !item) return;
  if (state.editing && state.editing !== id) cancelEdit();
  state.editing = id;
  const form = el("form", { className: "edit" });
  form.setAttribute("aria-label", `Edit ${describe(ev)}`);
  const time = el("input", { type: "datetime-local", step: 1, value: toInput(ev.time), required: true });
  form.append(...field("When", time));
  const kind = typeof ev.value?.value === "number" ? "number" : ev.value?.type === "note:txt" ? "text" : null;
  let value = null;
  if (kind) {
    value = el("input", { type: kind === "number" ? "number" : "text", step: "any", value: String(ev.value.value), required: true });
    form.append(...field(kind === "number" ? `Value (${splitType(ev.value.type).unit || ev.value.type})` : "Text", value));
  }
  const tags = el("input", { value: (ev.tags ?? []).join(", ") });
  form.append(...field("Tags", tags));
  const folder = el("select");
  folder.replaceChildren(...folderOptions("No folder", 2, { allowBlank: folderLevel(state.channel, null) >= 2 }));
  folder.value = ev.folderId ?? "";
  form.append(...field("Folder", folder));
  const description = el("input", { value: ev.description ?? "" });
  form.append(...field("Description", description));
  const save = el("button", { type: "submit", textContent: "Save", className: "primary" });
  const cancel = el("button", { type: "button", textContent: "Cancel" });
  cancel.addEventListener("click", cancelEdit);
  form.append(el("div", { className: "buttons" }, save, cancel));
  form.addEventListener("keydown", (e) => {
    if (e.key === "Escape") cancelEdit();
  });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    guard(async () => {
      const body = {
        time: fromInput(time.value),
        tags: tagsOf(tags),
        folderId: folder.value || null,
        description: description.value.trim() || null,
      };
      if (value) {
        const v = kind === "number" ? Number(value.value) : value.value;
        if (kind === "number" && !Number.isFinite(v)) throw new ApiError("INVALID_PARAMETERS_FORMAT", "a value must be a number");
        body.value = { type: ev.value.type, value: v };
      }
      await api("PUT", `/${state.channel}/events/${encodeURIComponent(id)}`, body);
      state.editing = null;
      await requestLoad(["events"]);
      toast("Saved.");
      $(`#events li[data-id="${CSS.escape(id)}"] button.edit`)?.focus();
    });
  });
  item.replaceChildren(form);
  time.focus();
}

function cancelEdit() {
  const id = state.editing;
  state.editing = null;
  renderEvents();
  if (id) $(`#events li[data-id="${CSS.escape(id)}"] button.edit`)?.focus();
}

// ---- trash -----------------------------------------------------------------------------

async function trashEvent(ev) {
  await guard(async () => {
    await api("DELETE", `/${state.channel}/events/${encodeURIComponent(ev.id)}`);
    const channel = state.channel;
    await requestLoad(["events"]);
    toast(`Moved to the trash: ${describe(ev)}.`, {
      label: "Undo",
      run: async () => {
        await api("PUT", `/${channel}/events/${encodeURIComponent(ev.id)}`, { trashed: false });
        await requestLoad(["events"]);
        toast("Restored.");
      },
    });
  });
}

function setView(view) {
  state.view = view;
  $("#events-view").hidden = view !== "events";
  $("#trash-view").hidden = view !== "trash";
  $("#view-events").setAttribute("aria-pressed", String(view === "events"));
  $("#view-trash").setAttribute("aria-pressed", String(view === "trash"));
}

async function showTrash() {
  setView("trash");
  $("#trash").replaceChildren();
  await guard(() => requestLoad(["events"]));
}

function renderTrash() {
  $("#trash-count").textContent = `(${state.trash.length})`;
  $("#trash").replaceChildren(
    ...state.trash.map((ev) => {
      const short = `${describe(ev)}, ${fmtTime(ev.time)}`;
      const actions = el("div", { className: "actions" });
      if (folderLevel(state.channel, ev.folderId) >= 2) {
        actions.append(
          actionButton("Restore", `Restore ${short}`, () =>
            guard(async () => {
              await api("PUT", `/${state.channel}/events/${encodeURIComponent(ev.id)}`, { trashed: false });
              await requestLoad(["events"]);
              toast(`Restored: ${describe(ev)}.`);
            }),
          "restore"),
        );
        const forever = actionButton("Delete forever", `Delete forever ${short}`, () => {
          // Two steps: the button asks for a confirmation in place.
          const confirm = actionButton("Confirm: delete forever", `Confirm: delete forever ${short}`, () =>
            guard(async () => {
              await api("DELETE", `/${state.channel}/events/${encodeURIComponent(ev.id)}`);
              await requestLoad(["events"]);
              toast("Deleted for good.");
            }),
          "danger confirm");
          const keep = actionButton("Keep", `Keep ${short}`, () => renderTrash());
          actions.replaceChildren(confirm, keep);
          keep.focus();
        }, "danger");
        actions.append(forever);
      }
      const item = el("li", {}, el("div", { className: "time", textContent: fmtTime(ev.time) }), eventBody(ev), actions);
      item.dataset.id = ev.id;
      return item;
    }),
  );
  const empty = $("#trash-empty");
  empty.hidden = state.trash.length > 0;
  empty.textContent = "The trash of this window is empty.";
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
      if (!text.trim() || !Number.isFinite(number)) throw new ApiError("INVALID_PARAMETERS_FORMAT", "a value must be a number");
      value = { type: $("#note-type").value.trim() || "count:generic", value: number };
    } else {
      value = { type: "note:txt", value: text };
    }
    const body = { value, tags: tagsOf($("#note-tags")), folderId: $("#note-folder").value || null };
    await api("POST", `/${state.channel}/events`, body);
    $("#note-text").value = "";
    $("#note-tags").value = "";
    await requestLoad(["events"]);
    toast("Recorded.");
  });
}

async function startPeriod(event) {
  event.preventDefault();
  await guard(async () => {
    const folderId = $("#period-folder").value;
    if (!folderId) throw new ApiError("MISSING_FOLDER", "choose a folder to start a period in");
    const { stoppedId } = await api("POST", `/${state.channel}/events/start`, { folderId });
    await requestLoad(["events"]);
    toast(stoppedId ? "Started (the period that was running is stopped)." : "Started.");
  });
}

async function stopPeriod(id) {
  await guard(async () => {
    const running = state.events.filter((ev) => ev.duration === null);
    const body = id ? { id } : running.length === 1 ? { id: running[0].id } : {};
    const { stoppedId } = await api("POST", `/${state.channel}/events/stop`, body);
    await requestLoad(["events"]);
    toast(stoppedId ? "Stopped." : "Nothing was running: nothing to stop.");
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
    await requestLoad(["events"]);
    toast("Uploaded.");
  });
}

async function createChannel(event) {
  event.preventDefault();
  await guard(async () => {
    const { id } = await api("POST", "/channels", { name: $("#channel-name").value.trim() });
    $("#channel-name").value = "";
    await requestLoad(["channels"], { channel: id });
  });
}

async function createFolder(event) {
  event.preventDefault();
  await guard(async () => {
    if (!state.channel) throw new ApiError("UNKNOWN_CHANNEL", "create or choose a channel first");
    const body = { name: $("#folder-name").value.trim(), parentId: $("#folder-parent").value || null };
    await api("POST", `/${state.channel}/folders`, body);
    $("#folder-name").value = "";
    await requestLoad(["folders"]);
  });
}

// ---- sharing (README "Sharing") --------------------------------------------------------

/** "2026-11-29" (a date field, local) → seconds: the start of that day, or with ``end`` its last second. */
function dateSeconds(value, end = false) {
  if (!value) return undefined;
  const [y, m, d] = value.split("-").map(Number);
  const start = new Date(y, m - 1, d).getTime() / 1000;
  return end ? start + 86399 : start;
}

function channelName(id) {
  return state.channels.find((c) => c.id === id)?.name ?? id;
}

function syncShareHow() {
  const user = $("#share-how-user").checked;
  $("#share-user").hidden = !user;
  $("#share-user-label").hidden = !user;
  $("#share-user").required = user;
  $("#share-submit").textContent = user ? "Share" : "Create link";
}

async function shareChannel(event) {
  event.preventDefault();
  await guard(async () => {
    const channel = state.channel;
    if (!channel) throw new ApiError("UNKNOWN_CHANNEL", "choose a channel to share");
    const withUser = $("#share-how-user").checked;
    const username = $("#share-user").value.trim().toLowerCase();
    if (withUser && !username) throw new ApiError("MISSING_PARAMETER", "type the username to share with");
    const permission = { channelId: channel, level: $("#share-level").value };
    const tags = tagsOf($("#share-tags"));
    if (tags.length) permission.tags = tags;
    const fromTime = dateSeconds($("#share-from").value);
    const toTime = dateSeconds($("#share-to").value, true);
    if (fromTime !== undefined) permission.fromTime = fromTime;
    if (toTime !== undefined) permission.toTime = toTime;
    const stamp = new Date().toISOString().slice(0, 19).replace("T", " ");
    const name = $("#share-name").value.trim() || `${channelName(channel)} ${withUser ? `for ${username}` : "link"} ${stamp}`;
    const body = { name, permissions: [permission] };
    if (withUser) body.shareWith = username;
    const { id } = await api("POST", "/tokens", body);
    $("#share-name").value = "";
    const result = $("#share-result");
    const link = $("#share-link");
    if (withUser) {
      $("#share-result-text").textContent = `Shared “${channelName(channel)}” with ${username}: it waits in their “Shared with you” list.`;
      link.hidden = true;
      link.removeAttribute("href");
      toast(`Shared with ${username}.`);
    } else {
      const href = `${location.origin}/${encodeURIComponent(state.username)}/?auth=${encodeURIComponent(id)}`;
      $("#share-result-text").textContent = `Link to “${channelName(channel)}” (anyone holding it reads what it grants):`;
      link.hidden = false;
      link.href = href;
      link.textContent = href;
      toast("Link created.");
    }
    result.hidden = false;
  });
}

/** The shares delivered to this user and their bookmarks (a session only). */
async function loadShares() {
  if (!can.shares()) return;
  const mode = state.mode;
  const [shares, bookmarks] = await Promise.all([api("GET", "/shares"), api("GET", "/bookmarks")]);
  if (mode !== state.mode) return;
  Object.assign(state, { shares, bookmarks });
  renderShares();
}

function renderShares() {
  $("#shares").replaceChildren(
    ...state.shares.map((share) => {
      const label = `“${share.name}” from ${share.fromUsername}`;
      const nameInput = el("input", { value: share.name, className: "rename" });
      nameInput.setAttribute("aria-label", `Bookmark name for ${label}`);
      nameInput.hidden = true; // shown when the name is taken
      const accept = actionButton("Accept", `Accept ${label}`, () =>
        guard(async () => {
          const body = nameInput.hidden ? {} : { name: nameInput.value.trim() || share.name };
          try {
            await api("POST", `/shares/${encodeURIComponent(share.id)}/accept`, body);
          } catch (err) {
            if (err.id !== "ITEM_NAME_ALREADY_EXISTS") throw err;
            nameInput.hidden = false;
            nameInput.focus();
            nameInput.select();
            throw new ApiError(err.id, "you already have a bookmark of this name: choose another and accept again");
          }
          await loadShares();
          toast(`Accepted: ${share.name} is in your bookmarks.`);
        }),
      "accept primary");
      const decline = actionButton("Decline", `Decline ${label}`, () =>
        guard(async () => {
          await api("DELETE", `/shares/${encodeURIComponent(share.id)}`);
          await loadShares();
          toast(`Declined: ${share.name}.`);
        }),
      "decline");
      const item = el(
        "li",
        {},
        el("div", { className: "what", textContent: share.name }),
        el("div", { className: "meta", textContent: `from ${share.fromUsername} · ${fmtTime(share.created)}` }),
        el("div", { className: "actions" }, nameInput, accept, decline),
      );
      item.dataset.id = share.id;
      return item;
    }),
  );
  $("#shares-empty").hidden = state.shares.length > 0;
  $("#shares-empty").textContent = "Nothing shared with you waits.";
  $("#bookmarks").replaceChildren(
    ...state.bookmarks.map((b) => {
      // The sharer's dashboard opened with the shared token (a link of its own, in memory only there).
      const href = `${b.url}?auth=${encodeURIComponent(b.accessToken)}`;
      const link = el("a", { href, textContent: b.name, target: "_blank", rel: "noopener noreferrer" });
      link.title = `Open ${b.name} (${b.url}) in a new tab`;
      const item = el("li", {}, link, el("div", { className: "meta url", textContent: b.url }));
      item.dataset.id = b.id;
      return item;
    }),
  );
  $("#bookmarks-empty").hidden = state.bookmarks.length > 0;
  $("#bookmarks-empty").textContent = "No bookmarks: accept a share to keep it here.";
}

// ---- series (docs/series.md) -----------------------------------------------------------

const isSeries = (ev) => typeof ev?.type === "string" && ev.type.startsWith("series:");
let seriesRequest = 0;

function seriesFields(ev) {
  const fields = ev.value?.value?.fields ?? ev.content?.fields ?? ["deltaTime", "value"];
  return fields.filter((f) => f !== "deltaTime");
}

function openSeries(ev) {
  const fields = seriesFields(ev);
  state.series = { channel: state.channel, event: ev, field: fields[0] ?? "value" };
  const select = $("#series-field");
  select.replaceChildren(...fields.map((f) => el("option", { value: f, textContent: f })));
  select.value = state.series.field;
  $("#series-field").hidden = fields.length < 2;
  $("#series-field-label").hidden = fields.length < 2;
  $("#series-name").textContent = `— ${describe(ev)}, ${fmtTime(ev.time)}`;
  $("#series").hidden = false;
  $("#series-info").textContent = "Loading…";
  renderEvents();
  guard(loadSeries);
  $("#series").scrollIntoView?.({ block: "nearest" });
}

function closeSeries() {
  const id = state.series?.event.id;
  state.series = null;
  seriesRequest++;
  $("#series").hidden = true;
  clearSeries($("#series-chart"));
  if (id && state.mode) {
    renderEvents();
    $(`#events li[data-id="${CSS.escape(id)}"] button.chart`)?.focus();
  }
}

/** Fetch the series shown, as many values as the chart has pixels, and draw it. */
async function loadSeries() {
  const shown = state.series;
  if (!shown) return;
  const request = ++seriesRequest;
  const figure = $("#series-chart");
  const width = seriesWidth(figure);
  const query = new URLSearchParams({ maxPoints: String(width) });
  const answer = await api("GET", `/${shown.channel}/events/${encodeURIComponent(shown.event.id)}/series?${query}`);
  if (request !== seriesRequest || state.series !== shown) return; // a newer request, or closed
  shown.width = width;
  const data = drawSeries(figure, { time: shown.event.time, answer, field: shown.field, title: shown.event.type });
  $("#series-info").textContent = answer.points.length
    ? data.decimated
      ? `${answer.points.length} buckets of ${Number(answer.resolution.toPrecision(3))} s: the line is the mean, the band min to max.`
      : `${answer.points.length} points.`
    : "No points yet.";
}

new ResizeObserver(() => {
  const shown = state.series;
  if (!shown?.width || $("#series").hidden) return;
  if (Math.abs(seriesWidth($("#series-chart")) - shown.width) > 24) guard(loadSeries);
}).observe($("#series-chart"));

// ---- wiring ----------------------------------------------------------------------------

$("#login-form").addEventListener("submit", login);
$("#logout").addEventListener("click", logout);
$("#ended-login").addEventListener("click", () => showLogin());
$("#error-close").addEventListener("click", () => showError(null));
$("#channel-form").addEventListener("submit", createChannel);
$("#folder-form").addEventListener("submit", createFolder);
$("#note-form").addEventListener("submit", recordNote);
$("#note-kind").addEventListener("change", () => {
  $("#note-type").hidden = $("#note-kind").value !== "value";
});
$("#period-form").addEventListener("submit", startPeriod);
$("#period-stop").addEventListener("click", () => stopPeriod(null));
$("#photo-form").addEventListener("submit", uploadPhoto);
$("#share-form").addEventListener("submit", shareChannel);
for (const radio of document.querySelectorAll("[name='share-how']")) radio.addEventListener("change", syncShareHow);
syncShareHow();
$("#series-close").addEventListener("click", closeSeries);
$("#series-field").addEventListener("change", () => {
  if (!state.series) return;
  state.series.field = $("#series-field").value;
  guard(loadSeries);
});
$("#filter-clear").addEventListener("click", () => {
  state.folder = null;
  renderFolders();
  guard(() => requestLoad(["events"]));
});
$("#view-events").addEventListener("click", () => {
  setView("events");
  guard(() => requestLoad(["events"]));
});
$("#view-trash").addEventListener("click", showTrash);
for (const input of ["#from-time", "#to-time"]) {
  $(input).addEventListener("change", () => {
    state.windowSeconds = null;
    for (const b of document.querySelectorAll("[data-window]")) b.setAttribute("aria-pressed", "false");
    guard(() => requestLoad(["events"]));
  });
}
for (const button of document.querySelectorAll("[data-window]")) {
  button.addEventListener("click", () => {
    setWindow(Number(button.dataset.window));
    guard(() => requestLoad(["events"]));
  });
}

// On a phone the forms start folded: the first screen shows the data.
if (window.matchMedia("(max-width: 760px)").matches) {
  for (const details of document.querySelectorAll("details.fold")) details.open = false;
}
setWindow(86400);
start();
