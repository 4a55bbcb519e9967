// The steps every client of tests/test_client_matrix.py goes through, for socket.io-client v4:
// run by node (matrix.mjs, the npm package) and in Chromium (the dashboard's vendored bundle).
// Only `io`, `fetch` and timers are used, so the same file runs in both.
//
// `token` may write events in channel `channelId` (and sees no other channel, so it hears
// only its own writes). `transports` undefined leaves the client at its default (polling,
// then the upgrade). Each step is handed to `out` as one object; the driver restarts the
// server when it receives {awaitingRestart: true}.
export async function scenario(io, { base, username, token, channelId, transports, out }) {
  // Reconnection delays shortened so the test does not wait seconds between attempts;
  // everything else is the client's default.
  const options = { reconnectionDelay: 100, reconnectionDelayMax: 500 };
  if (transports) options.transports = transports;
  const namespace = `${base}/${username}`;

  const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const until = async (check, what, ms = 5000) => {
    const end = Date.now() + ms;
    while (!check()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await pause(20);
    }
  };
  const connected = (socket) =>
    new Promise((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("connect_error", (err) =>
        reject(new Error(`connect_error: ${err.message} ${JSON.stringify(err.data)}`)),
      );
    });
  const transportOf = (socket) => socket.io.engine.transport.name;
  // With the default transports, wait for the upgrade: the client must end on websocket.
  const settled = async (socket) => {
    if (!transports) await until(() => transportOf(socket) === "websocket", "the websocket upgrade");
    return transportOf(socket);
  };
  const call = (socket, method, params) =>
    new Promise((resolve) => socket.emit(method, params, (error, result) => resolve({ error, result })));
  const write = async (content) => {
    const reply = await fetch(`${namespace}/${channelId}/events`, {
      method: "POST",
      headers: { Authorization: token, "Content-Type": "application/json" },
      body: JSON.stringify({ type: "note/txt", content }),
    });
    return reply.status;
  };
  const notified = (heard) => heard.some((n) => n.event === "eventsChanged" && n.data.channelId === channelId);

  // 1. Connect with auth: {token}; a call with an ack, an error ack, a notification.
  const socket = io(namespace, { ...options, auth: { token } });
  const heard = [];
  socket.onAny((event, data) => heard.push({ event, data }));
  await connected(socket);
  out({ connected: { transport: await settled(socket) } });
  out({ ack: await call(socket, "channels.get", {}) });
  out({ errorAck: await call(socket, "events.get", { channelId: "no-such-channel" }) });
  out({ http: await write("before-restart") });
  await until(() => notified(heard), "eventsChanged");
  out({ notification: heard.shift() });

  // 2. Connect with the seed-era ?auth= in the URL.
  const viaQuery = io(`${namespace}?auth=${encodeURIComponent(token)}`, options);
  await connected(viaQuery);
  const queryTransport = await settled(viaQuery);
  out({ queryAuth: { transport: queryTransport, ...(await call(viaQuery, "channels.get", {})) } });
  viaQuery.close();

  // 3. The server restarts: the client reconnects by itself and is notified again.
  const dropped = new Promise((resolve) => socket.once("disconnect", resolve));
  const back = new Promise((resolve) => socket.io.once("reconnect", resolve));
  out({ awaitingRestart: true });
  const reason = await dropped;
  await back;
  if (!socket.connected) await new Promise((resolve) => socket.once("connect", resolve));
  const transport = await settled(socket);
  const ack = await call(socket, "channels.get", {});
  heard.length = 0;
  await write("after-restart");
  await until(() => notified(heard), "eventsChanged after the restart");
  out({ reconnected: { reason, transport, ack, notified: true } });
  socket.close();
  out({ done: true });
}
