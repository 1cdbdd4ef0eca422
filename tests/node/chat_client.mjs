// Drives the chat example with the Node `ws` client: a non-Rust client speaking the typed
// channel's JSON. Usage: node chat_client.mjs ws://127.0.0.1:PORT
// Exits 0 when every check passes, 1 with the reason otherwise; gives up after 15 s.
import assert from "node:assert/strict";
import WebSocket from "ws";

const base = process.argv[2];
if (!base) {
  console.error("usage: node chat_client.mjs ws://host:port");
  process.exit(2);
}
const http = base.replace(/^ws/, "http");
setTimeout(() => {
  console.error("timed out");
  process.exit(1);
}, 15_000).unref();

/** A connection whose JSON events can be awaited one at a time, in order. */
class Client {
  constructor(url, options) {
    this.ws = new WebSocket(url, options);
    this.events = [];
    this.waiters = [];
    this.closed = new Promise((resolve) => this.ws.on("close", (code, reason) => resolve({ code, reason: `${reason}` })));
    this.ws.on("message", (data) => {
      const event = JSON.parse(data.toString());
      const waiter = this.waiters.shift();
      if (waiter) waiter(event);
      else this.events.push(event);
    });
  }
  open() {
    return new Promise((resolve, reject) => {
      this.ws.once("open", resolve);
      this.ws.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      this.ws.once("error", reject);
    });
  }
  next() {
    const event = this.events.shift();
    return event ? Promise.resolve(event) : new Promise((resolve) => this.waiters.push(resolve));
  }
  send(value) {
    this.ws.send(typeof value === "string" ? value : JSON.stringify(value));
  }
}

async function status(url) {
  const c = new Client(url);
  try {
    await c.open();
    c.ws.close();
    return 101;
  } catch (err) {
    return Number(err.message.replace("HTTP ", ""));
  }
}

// A name or a token is required.
assert.equal(await status(`${base}/chat/lobby`), 401);
assert.equal(await status(`${base}/chat/lobby?token=forged`), 401);

const ann = new Client(`${base}/chat/lobby?name=ann`);
await ann.open();
const bob = new Client(`${base}/chat/lobby`, { headers: { Authorization: "Bearer demo-token-bob" } });
await bob.open();
assert.deepEqual(await ann.next(), { type: "joined", user: "bob" });

// say: everyone, the speaker included.
bob.send({ type: "say", text: "hi ann" });
for (const client of [ann, bob]) {
  const event = await client.next();
  assert.equal(event.type, "message");
  assert.equal(event.user, "bob");
  assert.equal(event.text, "hi ann");
  assert.ok(Number.isInteger(event.ts) && event.ts > 1_600_000_000_000, `ts ${event.ts}`);
}

// typing: everyone but the subject.
ann.send({ type: "typing" });
assert.deepEqual(await bob.next(), { type: "typing", user: "ann" });

// An unknown type and an oversize message get an error event; the connection stays open.
bob.send({ type: "shout", text: "HI" });
const unknown = await bob.next();
assert.equal(unknown.type, "error");
assert.match(unknown.message, /unknown variant `shout`/);
bob.send({ type: "say", text: "x".repeat(5000) });
const oversize = await bob.next();
assert.equal(oversize.type, "error");
assert.match(oversize.message, /larger than the limit/);
bob.send({ type: "say", text: "still here" });
for (const client of [bob, ann]) {
  const event = await client.next();
  assert.equal(event.text, "still here", JSON.stringify(event));
}

// The page and the HTTP route live next to the channel.
const page = await (await fetch(`${http}/`)).text();
assert.match(page, /<title>ws-channels chat<\/title>/);
// The HTTP route next to the channel counts the room.
const info = await (await fetch(`${http}/rooms/lobby`)).json();
assert.deepEqual(info, { room: "lobby", users: 2 });

// The server's counters, in Prometheus' text format, labelled by channel.
const metrics = await (await fetch(`${http}/metrics`)).text();
const sample = (name) => {
  const line = metrics.split("\n").find((l) => l.startsWith(`${name}{channel="chat"} `));
  assert.ok(line, `${name} in /metrics:\n${metrics}`);
  return Number(line.split(" ")[1]);
};
assert.equal(sample("ws_channels_connections_open"), 2);
assert.ok(sample("ws_channels_connections_total") >= 2);
assert.ok(sample("ws_channels_messages_in_total") >= 2);
assert.match(metrics, /ws_channels_handler_seconds/);

// Leaving is announced to the others.
ann.ws.close(1000, "bye");
assert.deepEqual(await bob.next(), { type: "left", user: "ann" });
bob.ws.close();
await bob.closed;
console.log("chat: all checks passed");
process.exit(0);
