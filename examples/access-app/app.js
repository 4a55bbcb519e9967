// The whole app side of a pryvrt access request (API.md §13), with nothing but fetch:
// 1. POST {server}/access with what the app wants; 2. send the user to authUrl (here: a
// link opening the consent page); 3. poll the `poll` URL every pollRateMs until the user
// answers; 4. use the token. When the user answered, the consent page also sends the
// browser back to returnURL (this page) with status, key and apiEndpoint in the query.
const $ = (sel) => document.querySelector(sel);
const APP_ID = "heart-notes-example";
const PERMISSIONS = [{ channelId: "heart", defaultName: "Heart", level: "contribute" }];
let connection = null; // {base, username, token}: in memory only

function status(text) {
  $("#status").textContent = text;
}

async function requestAccess() {
  const server = $("#server").value.replace(/\/+$/, "");
  const back = location.origin + location.pathname;
  const res = await fetch(`${server}/access`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      requestingAppId: APP_ID,
      requestedPermissions: PERMISSIONS,
      deviceName: navigator.platform || "a browser",
      returnURL: back,
    }),
  });
  const request = await res.json();
  if (!res.ok) return status(`Refused: ${request.message}`);
  $("#consent-link").href = request.authUrl;
  $("#consent").hidden = false;
  status("Waiting for your answer on the consent page…");
  poll(request.poll, request.pollRateMs);
}

async function poll(url, rateMs) {
  for (;;) {
    await new Promise((done) => setTimeout(done, rateMs));
    const res = await fetch(url);
    const answer = await res.json();
    if (res.status === 429) continue; // too early: wait one more period
    if (!res.ok) return status(`The request ended: ${answer.message}`);
    if (answer.status === "ACCEPTED") return connect(answer.apiEndpoint);
    if (answer.status === "REFUSED") return status(`Access refused (${answer.reasonId}).`);
  }
}

async function connect(apiEndpoint) {
  // apiEndpoint is http(s)://{token}@host/{username}/: split it (fetch refuses credentials
  // in URLs) and send the token in the Authorization header.
  const url = new URL(apiEndpoint);
  const token = decodeURIComponent(url.username);
  url.username = "";
  const base = url.href.replace(/\/+$/, "");
  connection = { base, token, username: base.split("/").pop() };
  $("#consent").hidden = true;
  $("#connected").hidden = false;
  $("#username").textContent = connection.username;
  status("Connected.");
  await listChannels();
}

async function api(method, path, body) {
  const res = await fetch(`${connection.base}${path}`, {
    method,
    headers: { Authorization: connection.token, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return res.json();
}

async function listChannels() {
  const channels = await api("GET", "/channels");
  $("#channels").replaceChildren(
    ...channels.map((c) => Object.assign(document.createElement("li"), { textContent: `${c.name} (${c.id})` })),
  );
}

async function recordNote() {
  await api("POST", "/heart/events", { type: "note/txt", content: "hello from the example app" });
  const events = await api("GET", "/heart/events");
  status(`Recorded: the channel holds ${events.length} event(s).`);
}

// Back from the consent page (same tab or the tab it opened): the answer is in the query.
const query = new URLSearchParams(location.search);
if (query.get("status")) {
  history.replaceState(null, "", location.pathname); // the token leaves the address bar
  if (query.get("status") === "ACCEPTED") connect(query.get("apiEndpoint"));
  else status(`Access ${query.get("status").toLowerCase()}.`);
}
$("#request").addEventListener("click", () => requestAccess().catch((e) => status(e.message)));
$("#note").addEventListener("click", () => recordNote().catch((e) => status(e.message)));
