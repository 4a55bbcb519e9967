// The npm socket.io-client through the matrix scenario (scenario.mjs), for
// tests/test_client_matrix.py.
// Usage: node matrix.mjs <baseUrl> <username> <token> <channelId> <transports>
// where <transports> is "default" or a comma-separated list ("websocket", "polling").
// Prints one JSON line per step; exits 0 when every step passed, 1 otherwise.
import { io } from "socket.io-client";
import { scenario } from "./scenario.mjs";

const [base, username, token, channelId, transports] = process.argv.slice(2);
const out = (step) => console.log(JSON.stringify(step));
setTimeout(() => {
  out({ failed: "timeout" });
  process.exit(1);
}, 60000);
try {
  await scenario(io, {
    base,
    username,
    token,
    channelId,
    transports: transports === "default" ? undefined : transports.split(","),
    out,
  });
  process.exit(0);
} catch (err) {
  out({ failed: String((err && err.stack) || err) });
  process.exit(1);
}
