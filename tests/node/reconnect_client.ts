// The reconnecting connection of the generated TypeScript client, against the Rust chat server
// across a restart of its process, and against small `ws` servers that end connections in each
// way the close-code rules name. Compiled by `tsc -p tsconfig.json`, run by the Rust test
// `the_typescript_connection_survives_a_server_restart`:
//   node build/tests/node/reconnect_client.js ws://CHAT_ADDR
// It prints `restart server` and waits for `restarted` on stdin: the Rust test restarts the
// chat example on the same port in between.
import assert from "node:assert/strict";
import { createServer, type Socket } from "node:net";
import { createInterface } from "node:readline";
import WebSocket, { WebSocketServer } from "ws";
import { chat, type ChatCommand, type ChatEvent } from "../../examples/chat/chat.js";
import {
  ConnectionClosed,
  type Connection,
  type ConnectionState,
  type Received,
  type Reconnected,
} from "../../examples/chat/ws-channels.js";

const [base] = process.argv.slice(2);
if (!base) throw new Error("usage: reconnect_client.js ws://chat");
setTimeout(() => {
  console.error("timed out");
  process.exit(1);
}, 90_000).unref();

const stdin = createInterface({ input: process.stdin });
const lines = stdin[Symbol.asyncIterator]();
/** Asks the Rust test to restart the chat server, and waits until it has. */
async function restartServer(): Promise<void> {
  console.log("restart server");
  const { value } = await lines.next();
  assert.equal(value, "restarted");
}

/** Everything a connection reports, and a way to wait for what it has not reported yet. */
class Recorder {
  readonly states: ConnectionState[] = [];
  readonly received: Array<Received<ChatEvent> | Reconnected> = [];
  #waiters: Array<() => void> = [];

  constructor(connection: Connection<ChatCommand, ChatEvent> | null = null) {
    if (connection !== null) this.attach(connection);
  }

  attach(connection: Connection<ChatCommand, ChatEvent>): void {
    connection.subscribe((received) => this.#note(() => this.received.push(received)));
  }

  onState = (state: ConnectionState): void => this.#note(() => this.states.push(state));

  #note(record: () => void): void {
    record();
    for (const waiter of this.#waiters.splice(0)) waiter();
  }

  /** Resolves once `done` holds, checked after each report. */
  async until(what: string, done: () => boolean): Promise<void> {
    const deadline = Date.now() + 30_000;
    while (!done()) {
      if (Date.now() > deadline) throw new Error(`never happened: ${what}\nstates: ${JSON.stringify(this.states)}`);
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  }

  /** The chat messages received, as `user: text`. */
  said(): string[] {
    return this.received.flatMap((r) => ("reconnected" in r || !r.ok || r.msg.type !== "message" ? [] : [`${r.msg.user}: ${r.msg.text}`]));
  }

  kinds(): string[] {
    return this.states.map((s) => (s.state === "closed" ? `closed ${s.code}${s.final ? " final" : ""}` : s.state));
  }
}

// ---- Across a restart of the Rust chat server ----------------------------------------------

// The credentials hook runs before each attempt: a token, fresh each time.
const tokensAsked: number[] = [];
const ann = new Recorder();
const annConnection = chat.connect(base, { room: "reconnect" }, {
  WebSocket,
  query: (attempt) => {
    tokensAsked.push(attempt);
    return { token: "demo-token-ann" };
  },
  initialDelay: 100,
  maxDelay: 400,
  onState: ann.onState,
});
ann.attach(annConnection);
// Sent before the first open: queued, then sent once open.
annConnection.send({ type: "say", text: "queued before the first open" });
await ann.until("ann opens", () => annConnection.state.state === "open");
await ann.until("ann hears herself", () => ann.said().includes("ann: queued before the first open"));
assert.deepEqual(ann.kinds(), ["connecting", "open"]);
assert.deepEqual(ann.states[0], { state: "connecting", attempt: 0 });

const bob = new Recorder();
const bobConnection = chat.connect(base, { room: "reconnect" }, {
  WebSocket,
  query: { name: "bob" },
  initialDelay: 100,
  maxDelay: 400,
  queueLimit: 2,
  onState: bob.onState,
});
bob.attach(bobConnection);
await bob.until("bob opens", () => bobConnection.state.state === "open");
await ann.until("ann sees bob join", () => ann.received.some((r) => !("reconnected" in r) && r.ok && r.msg.type === "joined"));

await restartServer();
// Both noticed the end (the process died: 1006, no close frame), and retry with backoff.
await ann.until("ann reopens", () => ann.kinds().filter((k) => k === "open").length === 2);
await bob.until("bob reopens", () => bob.kinds().filter((k) => k === "open").length === 2);
for (const who of [ann, bob]) {
  const kinds = who.kinds();
  assert.equal(kinds.slice(0, 3).join(","), "connecting,open,closed 1006", `${kinds}`);
  assert.ok(kinds.includes("reconnecting"), `${kinds}`);
  assert.ok(!kinds.some((k) => k.endsWith("final")), `${kinds}`);
  for (const state of who.states) {
    if (state.state !== "reconnecting") continue;
    // Full jitter: somewhere between 0 and the attempt's bound, never above maxDelay.
    assert.ok(state.delay >= 0 && state.delay <= Math.min(400, 100 * 2 ** (state.attempt - 1)), JSON.stringify(state));
    assert.ok(state.lastError instanceof ConnectionClosed, `${state.lastError}`);
  }
  // The subscriber got a marker between the two connections' messages.
  const marker = who.received.find((r): r is Reconnected => "reconnected" in r);
  assert.ok(marker !== undefined && marker.after.code === 1006, JSON.stringify(who.received));
}
// The hook asked for credentials again for the new attempts.
assert.ok(tokensAsked.length >= 2 && tokensAsked[0] === 0 && tokensAsked[1] === 1, `${tokensAsked}`);

// The room is the address: both are in it again, and chat goes on.
annConnection.send({ type: "say", text: "after the restart" });
await bob.until("bob hears ann after the restart", () => bob.said().includes("ann: after the restart"));

// While the server is down, sends queue (up to queueLimit), are flushed in order on reopen,
// and past the limit `send` throws a ConnectionClosed.
console.log("restart server");
await bob.until("bob loses the server", () => bobConnection.state.state !== "open");
bobConnection.send({ type: "say", text: "queued 1" });
bobConnection.send({ type: "say", text: "queued 2" });
assert.throws(
  () => bobConnection.send({ type: "say", text: "one too many" }),
  (err: unknown) => err instanceof ConnectionClosed && /2 messages are already queued/.test(err.message),
);
// An invalid message is refused at once, queue or not.
assert.throws(() => bobConnection.send({ type: "say" } as never), { name: "ValidationError", message: 'say: missing property "text"' });
assert.equal((await lines.next()).value, "restarted");
// Bob is subscribed again before his queue goes out: he hears it himself, in order.
await bob.until("bob hears his queue", () => bob.said().join("|").includes("bob: queued 1|bob: queued 2"));
assert.ok(!bob.said().includes("bob: one too many"));

// Closing is final: no reconnect, and `send` throws.
annConnection.close();
bobConnection.close();
await ann.until("ann closed", () => ann.kinds().at(-1) === "closed 1000 final");
await bob.until("bob closed", () => bob.kinds().at(-1) === "closed 1000 final");
assert.throws(() => annConnection.send({ type: "typing" }), ConnectionClosed);

// ---- Final refusals are never retried -------------------------------------------------------

// No name and no token: the chat answers the handshake with 401. `ws` reports the status.
const refusedHook: number[] = [];
const refused = new Recorder();
const refusedConnection = chat.connect(base, { room: "reconnect" }, {
  WebSocket,
  query: (attempt) => {
    refusedHook.push(attempt);
    return {};
  },
  initialDelay: 10,
  onState: refused.onState,
});
await refused.until("the refusal is final", () => refused.kinds().at(-1)?.endsWith("final") === true);
assert.deepEqual(refused.kinds(), ["connecting", "closed 1006 final"]);
assert.deepEqual(refusedHook, [0]);
const refusal = refused.states.at(-1);
assert.ok(refusal?.state === "closed" && refusal.error?.status === 401, JSON.stringify(refusal));
assert.throws(() => refusedConnection.send({ type: "typing" }), (err: unknown) => err instanceof ConnectionClosed && err.status === 401);

// ---- Each end of the close-code rules, from a `ws` server -----------------------------------

/** A server that ends every connection its own way; counts the connections it saw. */
async function server(end: (socket: WebSocket) => void, options: { refuse?: number } = {}) {
  const wss = new WebSocketServer({
    host: "127.0.0.1",
    port: 0,
    ...(options.refuse === undefined
      ? {}
      : { verifyClient: (_: unknown, done: (ok: boolean, status?: number) => void) => done(false, options.refuse) }),
  });
  let connections = 0;
  wss.on("connection", (socket) => {
    connections += 1;
    end(socket);
  });
  await new Promise((resolve) => wss.once("listening", resolve));
  const { port } = wss.address() as { port: number };
  return { url: `ws://127.0.0.1:${port}`, wss, connections: () => connections, close: () => wss.close() };
}

/**
 * Connects with up to two retries in a row; returns the states seen until the final close, or
 * until it opened a second time (then it closes itself: each open starts the count again).
 */
async function endsOf(url: string): Promise<string[]> {
  const recorder = new Recorder();
  const connection = chat.connect(url, { room: "x" }, { WebSocket, initialDelay: 5, maxDelay: 20, maxAttempts: 2, onState: recorder.onState });
  const reopened = () => recorder.kinds().filter((k) => k === "open").length === 2;
  await recorder.until(`an end from ${url}`, () => reopened() || recorder.kinds().at(-1)?.endsWith("final") === true);
  const kinds = recorder.kinds();
  connection.close();
  return kinds;
}

/** Lets anything that would still happen happen. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 100));

for (const code of [1001, 1011, 1012, 1013, 1014, 4001]) {
  const s = await server((socket) => socket.close(code, "again"));
  const expected = ["connecting", "open", `closed ${code}`, "reconnecting", "connecting", "open"];
  assert.deepEqual(await endsOf(s.url), expected, `close ${code} is retried`);
  s.close();
}
for (const code of [1000, 1002, 1003, 1007, 1008, 1009, 1010, 3000, 4000, 4403]) {
  const s = await server((socket) => socket.close(code, "final"));
  assert.deepEqual(await endsOf(s.url), ["connecting", "open", `closed ${code} final`], `close ${code} is final`);
  await settle();
  assert.equal(s.connections(), 1, `close ${code}: never tried again`);
  s.close();
}
// A close frame without a code reads as 1005: final, as any code not named retried.
{
  const s = await server((socket) => socket.close());
  assert.deepEqual(await endsOf(s.url), ["connecting", "open", "closed 1005 final"]);
  s.close();
}
// A credentials hook that fails ends the connection for good (the Rust client's rule).
{
  const recorder = new Recorder();
  const connection = chat.connect(base, { room: "x" }, {
    WebSocket,
    query: () => Promise.reject(new Error("no token today")),
    onState: recorder.onState,
  });
  await recorder.until("the hook's failure is final", () => recorder.kinds().at(-1)?.endsWith("final") === true);
  assert.deepEqual(recorder.kinds(), ["connecting", "closed 1006 final"]);
  assert.throws(() => connection.send({ type: "typing" }), { name: "ConnectionClosed", message: "closed (1006: no token today)" });
}
// A server that accepts and closes at once: each short connection is a failed attempt, so the
// attempt limit ends it instead of a loop at the initial delay.
{
  const s = await server((socket) => socket.close(1011, "broken"));
  const recorder = new Recorder();
  chat.connect(s.url, { room: "x" }, { WebSocket, initialDelay: 5, maxDelay: 20, maxAttempts: 2, onState: recorder.onState });
  await recorder.until("the attempts to run out", () => recorder.kinds().at(-1)?.endsWith("final") === true);
  const waits = recorder.states.flatMap((state) => (state.state === "reconnecting" ? [state.attempt] : []));
  assert.deepEqual(waits, [1, 2]);
  assert.equal(recorder.kinds().at(-1), "closed 1011 final");
  assert.equal(s.connections(), 3);
  s.close();
}
// Never opened: `maxInitialAttempts` bounds what a browser cannot tell from a refusal.
{
  const s = await server(() => {}, { refuse: 503 });
  const recorder = new Recorder();
  chat.connect(s.url, { room: "x" }, { WebSocket, initialDelay: 5, maxDelay: 20, maxInitialAttempts: 2, onState: recorder.onState });
  await recorder.until("the first attempts to run out", () => recorder.kinds().at(-1)?.endsWith("final") === true);
  assert.deepEqual(recorder.states.flatMap((state) => (state.state === "reconnecting" ? [state.attempt] : [])), [1, 2]);
  s.close();
}
// After a reconnect the queue goes out before what a listener sends in reaction to `open`.
{
  const heard: string[] = [];
  const s = await server((socket) => {
    if (heard.length === 0) heard.push("first");
    socket.on("message", (data) => heard.push(String(data)));
  });
  const recorder = new Recorder();
  const connection = chat.connect(s.url, { room: "x" }, { WebSocket, initialDelay: 5, maxDelay: 20, onState: recorder.onState });
  await recorder.until("open", () => recorder.kinds().includes("open"));
  connection.onState((state) => {
    if (state.state === "reconnecting") connection.send({ type: "say", text: "queued" });
    if (state.state === "open") connection.send({ type: "say", text: "reacting" });
  });
  // The server drops the first connection; the client reconnects.
  for (const client of s.wss.clients) client.terminate();
  await recorder.until("reopened", () => recorder.kinds().filter((k) => k === "open").length === 2);
  await recorder.until("both heard", () => heard.length >= 3);
  assert.deepEqual(heard.slice(1).map((frame) => (JSON.parse(frame) as { text: string }).text), ["queued", "reacting"]);
  connection.close();
  s.close();
}
// Vanishing without a close frame is 1006, retried.
{
  const s = await server((socket) => socket.terminate());
  assert.deepEqual(await endsOf(s.url), ["connecting", "open", "closed 1006", "reconnecting", "connecting", "open"]);
  s.close();
}
// HTTP refusals: 4xx final (429 aside), 5xx retried; the connection never opens.
for (const [status, final] of [[400, true], [403, true], [404, true], [429, false], [503, false]] as const) {
  const s = await server(() => {}, { refuse: status });
  const kinds = await endsOf(s.url);
  const expected = final
    ? ["connecting", "closed 1006 final"]
    : ["connecting", "closed 1006", "reconnecting", "connecting", "closed 1006", "reconnecting", "connecting", "closed 1006 final"];
  assert.deepEqual(kinds, expected, `HTTP ${status}`);
  await settle();
  assert.equal(s.connections(), 0);
  s.close();
}
// Nothing listening: retried with growing bounds until maxAttempts.
{
  const s = await server(() => {});
  const url = s.url;
  s.close();
  const recorder = new Recorder();
  chat.connect(url, { room: "x" }, { WebSocket, initialDelay: 40, maxDelay: 100, maxAttempts: 3, onState: recorder.onState });
  await recorder.until("giving up", () => recorder.kinds().at(-1)?.endsWith("final") === true);
  const waits = recorder.states.flatMap((state) => (state.state === "reconnecting" ? [[state.attempt, state.delay]] : []));
  assert.deepEqual(waits.map(([attempt]) => attempt), [1, 2, 3]);
  for (const [attempt = 0, delay = -1] of waits) {
    assert.ok(delay >= 0 && delay <= Math.min(100, 40 * 2 ** (attempt - 1)), `attempt ${attempt} waited ${delay}`);
  }
}
// Closed by the application while an attempt is under way (a server that accepts TCP and never
// answers the handshake): final, with the application's code rather than the socket's 1006.
{
  const sockets: Socket[] = [];
  let accepted: () => void = () => {};
  const acceptedOne = new Promise<void>((resolve) => (accepted = resolve));
  const silent = createServer((socket) => {
    sockets.push(socket);
    accepted();
  });
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  const { port } = silent.address() as { port: number };
  const recorder = new Recorder();
  const connection = chat.connect(`ws://127.0.0.1:${port}`, { room: "x" }, { WebSocket, onState: recorder.onState });
  await acceptedOne;
  connection.close(4000, "changed my mind");
  await recorder.until("closed while connecting", () => recorder.kinds().at(-1)?.endsWith("final") === true);
  assert.deepEqual(recorder.kinds(), ["connecting", "closed 4000 final"]);
  for (const socket of sockets) socket.destroy();
  silent.close();
}
// A garbage frame is an error for the subscriber; the connection stays open.
{
  const s = await server((socket) => {
    socket.send("not json");
    socket.send(JSON.stringify({ type: "message", user: "u", text: "fine", ts: 1 }));
  });
  const recorder = new Recorder();
  const connection = chat.connect(s.url, { room: "x" }, { WebSocket, onState: recorder.onState });
  recorder.attach(connection);
  await recorder.until("two frames", () => recorder.received.length === 2);
  const [garbage, fine] = recorder.received;
  assert.ok(garbage !== undefined && !("reconnected" in garbage) && !garbage.ok && garbage.err instanceof SyntaxError);
  assert.deepEqual(fine, { ok: true, msg: { type: "message", user: "u", text: "fine", ts: 1 } });
  assert.equal(connection.state.state, "open");
  connection.close();
  s.close();
}

console.log("reconnect client: all checks passed");
process.exit(0);
