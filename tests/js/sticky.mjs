// A default-transport socket.io-client behind the load balancer, for
// tests/test_sticky_sessions.py. It connects from the loopback address <localAddress> (as a
// client on another machine would, so that source-address stickiness can place it), reports
// its socket id and transport, waits for the notification of a write made through another
// server, then writes through its own socket.
// Usage: node sticky.mjs <baseUrl> <username> <token> <channelId> <localAddress>
import http from "node:http";
import { io } from "socket.io-client";

const [base, username, token, channelId, localAddress] = process.argv.slice(2);
const out = (step) => console.log(JSON.stringify(step));
const fail = (why) => {
  out({ failed: why });
  process.exit(1);
};
setTimeout(() => fail("timeout"), 30000);

const socket = io(`${base}/${username}`, {
  auth: { token },
  agent: new http.Agent({ localAddress, keepAlive: true }),
});
socket.on("connect_error", (err) => fail(`connect_error: ${err.message} ${JSON.stringify(err.data)}`));
const heard = new Promise((resolve) =>
  socket.on("eventsChanged", (data) => data.channelId === channelId && resolve(data)),
);
await new Promise((resolve) => socket.once("connect", resolve));
const engine = socket.io.engine;
if (engine.transport.name !== "websocket") await new Promise((resolve) => engine.once("upgrade", resolve));
out({ connected: { sid: socket.id, transport: engine.transport.name } });

out({ notification: await heard });
const ack = await new Promise((resolve) =>
  socket.emit("events.create", { channelId, type: "note/txt", content: "from node" }, (error, result) =>
    resolve({ error, result }),
  ),
);
out({ ack, transport: engine.transport.name });
socket.close();
process.exit(0);
