// A Node client built on the generated TypeScript modules, against the Rust servers.
// Compiled by `tsc -p tsconfig.json` (strict), then run:
//   node build/tests/node/ts_client.js ws://USER_EVENTS_ADDR ws://CHAT_ADDR
import assert from "node:assert/strict";
import WebSocket, { WebSocketServer } from "ws";
// Two contracts and the runtime through one index (index.ts).
import {
  ParameterError,
  ValidationError,
  sensors,
  userEvents,
  type Received,
  type UserSignedUp,
  type WebSocketLike,
} from "./index.js";
import { chat, type ChatCommand, type ChatEvent } from "../../examples/chat/chat.js";

// Both the browser's WebSocket and Node's `ws` fit the generated functions (checked by tsc).
export const browserFits = (ws: globalThis.WebSocket): WebSocketLike => ws;
export const wsFits = (ws: WebSocket): WebSocketLike => ws;

const [userEventsBase, chatBase] = process.argv.slice(2);
if (!userEventsBase || !chatBase) throw new Error("usage: ts_client.js ws://user-events ws://chat");
setTimeout(() => {
  console.error("timed out");
  process.exit(1);
}, 15_000).unref();

function opened(ws: WebSocket): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

/** The next `count` results a subscription reports. */
function collect<T>(subscribe: (onData: (r: Received<T>) => void) => () => void, count: number) {
  return new Promise<Array<Received<T>>>((resolve) => {
    const results: Array<Received<T>> = [];
    const stop = subscribe((r) => {
      results.push(r);
      if (results.length === count) {
        stop();
        resolve(results);
      }
    });
  });
}

// URLs: parameters percent-encoded, a query after the path (the base's own kept), and the
// values no URL can carry refused with a typed error.
assert.equal(userEvents.url("ws://h:1/", { userId: "a b/c" }), "ws://h:1/user/events/a%20b%2Fc");
assert.equal(
  userEvents.url("ws://h:1/api?v=2", { userId: 7 }, { token: "t&k", skip: undefined }),
  "ws://h:1/api/user/events/7?v=2&token=t%26k",
);
assert.equal(chat.url("ws://h:1", { room: "lobby" }, new URLSearchParams([["name", "ann"]])), "ws://h:1/chat/lobby?name=ann");
assert.equal(userEvents.url("ws://h:1", { userId: "..." }), "ws://h:1/user/events/...");
for (const bad of [".", "..", ""]) {
  assert.throws(
    () => userEvents.url("ws://h:1", { userId: bad }),
    (err: unknown) => err instanceof ParameterError && err.parameter === "userId" && err.value === bad,
    `userId ${JSON.stringify(bad)}`,
  );
  // The chat module has a runtime of its own (examples/chat/ws-channels.ts): its class.
  assert.throws(() => chat.connect("ws://h:1", { room: bad }, { WebSocket }), { name: "ParameterError" });
}
// Why: URL parsing drops such a segment, however it is encoded.
assert.equal(new URL("ws://h/user/events/%2E%2e").pathname, "/user/");

// The Rust user_events server: publish, the handler replies, subscribe gets it.
const user = await opened(new WebSocket(userEvents.url(userEventsBase, { userId: "user123" })));
const reply = collect<UserSignedUp>((onData) => userEvents.subscribe(user, onData), 1);
await userEvents.publish(user, { userId: "user123", email: "user@example.com" });
assert.deepEqual(await reply, [{ ok: true, msg: { userId: "user123", email: "updated@example.com" } }]);
// Invalid messages are refused before sending, naming the path and the reason; so is a
// closed socket.
await assert.rejects(userEvents.publish(user, { userId: 5 } as unknown as UserSignedUp), {
  name: "ValidationError",
  message: 'message: missing property "email"',
});
await assert.rejects(userEvents.publish(user, { userId: 5, email: "e" } as unknown as UserSignedUp), {
  message: "userId: expected string, got number",
});
user.close();
await assert.rejects(userEvents.publish(user, { userId: "u", email: "e" }), /not open/);

// The chat server: typed events in a room.
const ann = await opened(new WebSocket(chat.url(chatBase, { room: "ts" }, { name: "ann" })));
const annEvents = collect<ChatEvent>((onData) => chat.subscribe(ann, onData), 2);
const bob = await opened(new WebSocket(chat.url(chatBase, { room: "ts" }, { name: "bob" })));
await chat.publish(bob, { type: "say", text: "typed hello" });
const [joined, message] = await annEvents;
assert.deepEqual(joined, { ok: true, msg: { type: "joined", user: "bob" } });
assert.ok(message?.ok, `${message}`);
// The discriminated unions narrow with no cast: `ok`, then the event's `type`.
assert.equal(message.msg.type, "message");
if (message.msg.type === "message") {
  assert.equal(message.msg.text, "typed hello");
  assert.ok(message.msg.ts > 0);
}
// A tagged union's problem is the variant's: its tag names it.
await assert.rejects(chat.publish(bob, { type: "say" } as unknown as ChatCommand), {
  message: 'say: missing property "text"',
});
await assert.rejects(chat.publish(bob, { type: "say", text: 1 } as unknown as ChatCommand), {
  message: "say.text: expected string, got number",
});
await assert.rejects(chat.publish(bob, { type: "shout" } as unknown as ChatCommand), {
  message: 'message.type: expected one of "say", "typing"',
});
await assert.rejects(chat.publish(bob, { text: "hi" } as unknown as ChatCommand), {
  message: 'message: missing property "type" (one of "say", "typing")',
});
// The same on a MessagePack channel's tagged union (validation does not depend on the codec).
await assert.rejects(sensors.publish(bob, { type: "report", celsius: ["hot"] } as never), {
  message: "report.celsius[0]: expected number, got string",
});
ann.close();
bob.close();

// A malformed server message is an error in the callback, not an exception.
const rogue = new WebSocketServer({ host: "127.0.0.1", port: 0 });
rogue.on("connection", (ws) => {
  ws.send("not json");
  ws.send(JSON.stringify({ userId: 5, email: "x" }));
  ws.send(JSON.stringify({ userId: "ok", email: "fine@example.com" }));
});
await new Promise((resolve) => rogue.once("listening", resolve));
const { port } = rogue.address() as { port: number };
// Subscribe before the socket opens: the rogue server sends as soon as it accepts.
const victim = new WebSocket(userEvents.url(`ws://127.0.0.1:${port}`, { userId: "x" }));
const received = collect<UserSignedUp>((onData) => userEvents.subscribe(victim, onData), 3);
await opened(victim);
const [garbage, wrong, fine] = await received;
assert.ok(garbage?.ok === false && garbage.err instanceof SyntaxError, `${garbage}`);
assert.ok(wrong?.ok === false && wrong.err instanceof ValidationError, `${wrong}`);
assert.equal(wrong.err.message, "userId: expected string, got number");
assert.deepEqual(fine, { ok: true, msg: { userId: "ok", email: "fine@example.com" } });
victim.close();
rogue.close();

console.log("ts client: all checks passed");
process.exit(0);
