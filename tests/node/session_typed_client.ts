// The session wrappers ws-channels generates (`subscribeTalk`, `subscribeWelcome`), with the real
// centrifuge SDK (5.8.0, pinned in package.json) against a ws-channels server with sessions.
// Compiled next to the generated `talk.ts` and run by the Rust test
// `typed_session_wrappers_talk_to_a_server_over_the_centrifuge_sdk` (examples/run_examples.rs),
// which reads the lines it prints:
//   node session_typed_client.js ws://127.0.0.1:<port>/connection/websocket
//
// 1. subscribes to the room `café ok!` with the typed wrapper: its channel string is the
//    canonical address `talk/caf%C3%A9%20ok%21` (the server refuses any other form);
// 2. publishes `hi`, which comes back to `onMessage` typed and validated;
// 3. publishes a text longer than the contract's 16 characters: the server (which does not
//    check the length) broadcasts it, and the wrapper hands it to `onInvalid`, not `onMessage`;
// 4. publishes `after`, which arrives next: the invalid one never reached `onMessage`;
// 5. publishes a message that is no `Talk` through the wrapper: refused before it is sent; the
//    same through the SDK's own `publish` (unchecked): the server's reply 107;
// 6. subscribes to the server-only `welcome`, whose `on_open` pushes a greeting.
import assert from "node:assert/strict";
import { Centrifuge } from "centrifuge";
import WebSocket from "ws";
import { ValidationError } from "./ws-channels.js";
import { type Heard, type Talk, type Welcome, subscribeTalk, subscribeWelcome } from "./talk.js";

const url = process.argv[2];
if (url === undefined) throw new Error("usage: session_typed_client.js ws://…/connection/websocket");

// Never hang: the Rust side bounds the run too.
setTimeout(() => {
  console.error("session_typed_client: still running after 30 s");
  process.exit(2);
}, 30_000).unref();

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `test` every 20 ms until it holds, for at most 5 s. */
async function until(test: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within 5 s`);
    await sleep(20);
  }
}

const client = new Centrifuge(url, { websocket: WebSocket, timeout: 5_000, minReconnectDelay: 100 });
const heard: Heard[] = [];
const invalid: unknown[] = [];
let subscribed = 0;

// 1.
const talk = subscribeTalk(client, { room: "café ok!" }, {
  onMessage(message, publication) {
    // Typed: `message.text` is a string; the SDK's context comes along.
    assert.equal(publication.channel, "talk/caf%C3%A9%20ok%21");
    heard.push(message);
    console.log(`message ${message.text}`);
  },
  onInvalid(error, publication) {
    assert.ok(error instanceof ValidationError);
    invalid.push(publication.data);
    console.log(`invalid ${error.message}`);
  },
  onSubscribed() {
    subscribed += 1;
    console.log(`subscribed ${subscribed}`);
  },
});
console.log(`channel ${talk.channel}`);
client.connect();
await talk.subscription.ready(5_000);

// 2.
await talk.publish({ type: "say", text: "hi" });
await until(() => heard.length === 1, "hi");
assert.deepEqual(heard[0], { text: "hi" });

// 3.
const long = "much longer than sixteen characters";
await talk.publish({ type: "say", text: long });
await until(() => invalid.length === 1, "the invalid publication");
assert.deepEqual(invalid[0], { text: long });

// 4.
await talk.publish({ type: "say", text: "after" });
await until(() => heard.length === 2, "after");
assert.deepEqual(
  heard.map((h) => h.text),
  ["hi", "after"],
);

// 5.
const notTalk = { type: "shout", text: "HEY" } as unknown as Talk;
try {
  await talk.publish(notTalk);
  assert.fail("an invalid message was published");
} catch (err) {
  assert.ok(err instanceof ValidationError, `${err}`);
  console.log(`refused before sending: ${err.name}`);
}
try {
  await talk.subscription.publish(notTalk);
  assert.fail("the server took data that is no Talk");
} catch (err) {
  console.log(`server refused: ${(err as { code?: number }).code}`);
}
await sleep(200);
assert.equal(heard.length, 2, "nothing more was heard");

// 6.
const greetings: Welcome[] = [];
const welcome = subscribeWelcome(client, {}, { onMessage: (message) => greetings.push(message) });
assert.ok(!("publish" in welcome), "a server-only channel has no publish");
await until(() => greetings.length === 1, "the welcome");
console.log(`welcome ${greetings[0]?.greeting}`);

talk.unsubscribe();
welcome.unsubscribe();
assert.equal(client.getSubscription(talk.channel), null, "removed from the client");
client.disconnect();
console.log("typed session client: all checks passed");
