// A real socket.io-client v4 against pryvrt, driven by tests/test_js_client.py.
// Usage: node client.mjs <baseUrl> <username> <token>
// Prints one JSON line per step; exits 0 when every step passed, 1 otherwise.
import { io } from "socket.io-client";

const [baseUrl, username, token] = process.argv.slice(2);
const out = (step) => console.log(JSON.stringify(step));
const fail = (why) => {
  out({ failed: why });
  process.exit(1);
};
setTimeout(() => fail("timeout"), 10000);

// 1. A bad credential is refused with {id: "INVALID_TOKEN"} in err.data.
const refused = await new Promise((resolve) => {
  const bad = io(`${baseUrl}/${username}`, { auth: { token: "nope" }, transports: ["websocket"], reconnection: false });
  bad.on("connect", () => resolve(null));
  bad.on("connect_error", (err) => {
    bad.close();
    resolve({ message: err.message, data: err.data });
  });
});
out({ refused });

// 2. Connect with the token, call methods with acks.
const socket = io(`${baseUrl}/${username}`, { auth: { token }, transports: ["websocket"] });
const notifications = [];
socket.onAny((event, ...args) => {
  notifications.push({ event, args });
  out({ notification: { event, args } });
});
await new Promise((resolve, reject) => {
  socket.on("connect", resolve);
  socket.on("connect_error", (err) => reject(new Error(`${err.message} ${JSON.stringify(err.data)}`)));
}).catch((err) => fail(String(err)));
out({ connected: true });

const call = (method, params) =>
  new Promise((resolve) => socket.emit(method, params, (error, result) => resolve({ error, result })));
out({ ack: await call("channels.get", {}) });
out({ ack: await call("nothing.here", {}) });
out({ ack: await call("command", { id: "channels.get", params: {} }) });

// 3. A write over HTTP is notified live.
const reply = await fetch(`${baseUrl}/${username}/channels`, {
  method: "POST",
  headers: { Authorization: token, "Content-Type": "application/json" },
  body: JSON.stringify({ name: "from-node" }),
});
out({ http: reply.status });
while (!notifications.some((n) => n.event === "channelsChanged")) {
  await new Promise((resolve) => setTimeout(resolve, 20));
}
socket.close();
out({ done: true });
process.exit(0);
