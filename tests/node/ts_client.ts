// A Node client built on the generated TypeScript modules, against the Rust servers.
// Compiled by `tsc -p tsconfig.json` (strict), then run:
//   node build/tests/node/ts_client.js ws://USER_EVENTS_ADDR ws://CHAT_ADDR
import assert from "node:assert/strict";
import WebSocket, { WebSocketServer } from "ws";
import { userEvents, type UserSignedUp, type WebSocketLike } from "../../examples/user_events.js";
import { chat, type ChatEvent } from "../../examples/chat/chat.js";

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
function collect<T>(subscribe: (onData: (r: { err?: Error; msg?: T }) => void) => () => void, count: number) {
  return new Promise<Array<{ err?: Error; msg?: T }>>((resolve) => {
    const results: Array<{ err?: Error; msg?: T }> = [];
    const stop = subscribe((r) => {
      results.push(r);
      if (results.length === count) {
        stop();
        resolve(results);
      }
    });
  });
}

// The Rust user_events server: publish, the handler replies, subscribe gets it.
assert.equal(userEvents.url("ws://h:1/", { userId: "a b/c" }), "ws://h:1/user/events/a%20b%2Fc");
const user = await opened(new WebSocket(userEvents.url(userEventsBase, { userId: "user123" })));
const reply = collect<UserSignedUp>((onData) => userEvents.subscribe(user, onData), 1);
await userEvents.publish(user, { userId: "user123", email: "user@example.com" });
assert.deepEqual(await reply, [{ msg: { userId: "user123", email: "updated@example.com" } }]);
// Invalid messages are refused before sending; so is a closed socket.
await assert.rejects(userEvents.publish(user, { userId: 5 } as unknown as UserSignedUp), /message.userId: expected string|missing email/);
user.close();
await assert.rejects(userEvents.publish(user, { userId: "u", email: "e" }), /not open/);

// The chat server: typed events in a room.
const ann = await opened(new WebSocket(`${chat.url(chatBase, { room: "ts" })}?name=ann`));
const annEvents = collect<ChatEvent>((onData) => chat.subscribe(ann, onData), 2);
const bob = await opened(new WebSocket(`${chat.url(chatBase, { room: "ts" })}?name=bob`));
await chat.publish(bob, { type: "say", text: "typed hello" });
const [joined, message] = await annEvents;
assert.deepEqual(joined, { msg: { type: "joined", user: "bob" } });
assert.equal(message?.msg?.type, "message");
if (message?.msg?.type === "message") {
  // The discriminated union narrows: `text` and `ts` exist only on messages.
  assert.equal(message.msg.text, "typed hello");
  assert.ok(message.msg.ts > 0);
}
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
const results = await received;
assert.ok(results[0]?.err instanceof SyntaxError, `${results[0]?.err}`);
assert.match(`${results[1]?.err?.message}`, /message.userId: expected string/);
assert.deepEqual(results[2], { msg: { userId: "ok", email: "fine@example.com" } });
victim.close();
rogue.close();

console.log("ts client: all checks passed");
process.exit(0);
