// pryvrt consent page (API.md §13): an app asked for access; the user signs in (the
// dashboard's cookie session), reads what the app asks for, and accepts or refuses.
// No build step. Every request carries X-Pryvrt-CSRF: the server takes a decision only
// from this page (a form or a page of another site cannot send that header). Nothing
// here ever sees a token: the app collects it by polling; the browser goes back to the
// app through the server's /access/{key}/return.

const $ = (sel) => document.querySelector(sel);
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  for (const child of children) node.append(child);
  return node;
};

const key = decodeURIComponent(location.pathname.split("/")[2] || "");
const state = { username: null, request: null };

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.id = body && body.id;
  }
}

async function call(method, path, body) {
  const headers = { "X-Pryvrt-CSRF": "1" };
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

function show(section) {
  for (const id of ["loading", "signin", "request", "done"]) $(`#${id}`).hidden = id !== section;
}

function error(message) {
  $("#error").textContent = message || "";
  $("#error").hidden = !message;
}

function done(title, text) {
  $("#done-title").textContent = title;
  $("#done-text").textContent = text;
  show("done");
}

// ---- what the app asks for, in words ----------------------------------------------------

const VERBS = { read: "read", contribute: "read and add to", manage: "read, add to and manage" };
const STATES = { created: "will be created", missing: "does not exist yet" };

function stateBadge(item) {
  const text = STATES[item.state];
  return text ? el("span", { className: `state ${item.state}`, textContent: text }) : "";
}

function channelWords(perm) {
  if (perm.channelId === "*") return "all your channels";
  return `your channel ${perm.name || perm.channelId}`;
}

function describe(perm) {
  const items = [];
  if (!perm.folderPermissions) {
    items.push(el("li", {}, `${VERBS[perm.level]} ${channelWords(perm)}`, stateBadge(perm)));
    return items;
  }
  if (perm.state === "created" || perm.state === "missing") {
    items.push(el("li", {}, `see ${channelWords(perm)}`, stateBadge(perm)));
  }
  for (const folder of perm.folderPermissions) {
    const what =
      folder.folderId === null
        ? `the events with no folder in ${channelWords(perm)}`
        : `the folder ${folder.name || folder.folderId} of ${channelWords(perm)}`;
    items.push(el("li", {}, `${VERBS[folder.level]} ${what}`, stateBadge(folder)));
  }
  return items;
}

function tokenWords(perms) {
  return perms
    .map((p) => {
      const where = p.channelId === "*" ? "all channels" : `channel ${p.channelId}`;
      const folders = p.folderPermissions
        ? ` (folders: ${p.folderPermissions.map((f) => `${f.folderId ?? "none"} ${f.level}`).join(", ")})`
        : "";
      return `${p.level} on ${where}${folders}`;
    })
    .join("; ");
}

function render(review) {
  state.request = review;
  $("#who").textContent = review.username;
  $("#signout").hidden = false;
  if (review.status !== "NEED_SIGNIN") {
    done("This request was answered already", "You can close this page.");
    return;
  }
  $("#app-id").textContent = review.requestingAppId;
  $("#device").hidden = !review.deviceName;
  $("#device-name").textContent = review.deviceName || "";
  const list = $("#permissions");
  list.replaceChildren(...review.permissions.flatMap(describe));
  const notice = $("#token-state");
  notice.classList.remove("ok");
  if (review.matchingToken) {
    notice.textContent = "This app already has access with these permissions: its token is reused.";
    notice.classList.add("ok");
    notice.hidden = false;
  } else if (review.mismatchingToken) {
    notice.textContent =
      "This app already has access with other permissions (" +
      tokenWords(review.mismatchingToken.permissions) +
      "). Accepting replaces them with the ones above.";
    notice.hidden = false;
  } else {
    notice.hidden = true;
  }
  const problems = $("#problems");
  problems.replaceChildren(...review.problems.map((p) => el("li", { textContent: p })));
  problems.hidden = review.problems.length === 0;
  $("#accept").disabled = review.problems.length > 0;
  $("#return-to").hidden = !review.returnURL;
  $("#return-url").textContent = review.returnURL || "";
  show("request");
}

// ---- flow ---------------------------------------------------------------------------------

async function load() {
  error("");
  if (!key) {
    done("No access request", "This address names no access request.");
    return;
  }
  try {
    render(await call("GET", `/access/${encodeURIComponent(key)}/review`));
  } catch (err) {
    if (err.id === "INVALID_TOKEN") {
      $("#who").textContent = "";
      $("#signout").hidden = true;
      show("signin");
    } else if (err.id === "UNKNOWN_ACCESS_REQUEST") {
      done("This request has expired", "Ask the app to request access again.");
    } else {
      show("signin");
      error(err.message);
    }
  }
}

async function signIn(event) {
  event.preventDefault();
  error("");
  const username = $("#signin-username").value.trim().toLowerCase();
  const password = $("#signin-password").value;
  try {
    await call("POST", `/${encodeURIComponent(username)}/dashboard/login`, {
      userName: username,
      password,
      appId: "pryvrt-consent",
    });
    $("#signin-password").value = "";
    state.username = username;
    await load();
  } catch (err) {
    error(err.id === "INVALID_CREDENTIALS" ? "Wrong username or password." : err.message);
  }
}

async function signOut() {
  const username = state.request && state.request.username;
  if (username) {
    await call("POST", `/${encodeURIComponent(username)}/dashboard/logout`).catch(() => {});
  }
  state.request = null;
  await load();
}

async function decide(verb) {
  error("");
  $("#accept").disabled = $("#refuse").disabled = true;
  try {
    const answer = await call("POST", `/access/${encodeURIComponent(key)}/${verb}`);
    const accepted = answer.status === "ACCEPTED";
    done(
      accepted ? "Access given" : "Access refused",
      answer.returnURL ? "Going back to the app…" : "You can close this page and go back to the app.",
    );
    if (answer.returnURL) {
      // The server checked the address (http or https only) and adds the answer to it.
      location.assign(`/access/${encodeURIComponent(key)}/return`);
    }
  } catch (err) {
    error(err.message);
    $("#accept").disabled = $("#refuse").disabled = false;
    if (err.id === "UNKNOWN_ACCESS_REQUEST" || err.id === "INVALID_OPERATION") await load();
  }
}

$("#signin-form").addEventListener("submit", signIn);
$("#signout").addEventListener("click", signOut);
$("#accept").addEventListener("click", () => decide("accept"));
$("#refuse").addEventListener("click", () => decide("refuse"));
load();
