// A Node client of the binary example (examples/binary.rs) built on its generated TypeScript
// module: the MessagePack channel `sensors` and the raw channel `relay`. Compiled strict and run
// by the Rust test `binary_channels_talk_to_the_generated_typescript_client`:
//   node .../tests/node/binary_client.js ws://BINARY_ADDR
import assert from "node:assert/strict";
import WebSocket from "ws";
import { decode, encode } from "@msgpack/msgpack";
import { relay, sensors, type SensorCommand, type SensorEvent } from "../../examples/binary.js";
import type { Received, Reconnected, WebSocketLike } from "../../examples/ws-channels.js";

// Both the browser's WebSocket and Node's `ws` still fit the generated functions (checked by tsc).
export const browserFits = (ws: globalThis.WebSocket): WebSocketLike => ws;
export const wsFits = (ws: WebSocket): WebSocketLike => ws;

const [base] = process.argv.slice(2);
if (!base) throw new Error("usage: binary_client.js ws://binary");
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

// MessagePack: publish typed commands, the Rust server answers in MessagePack, and subscribe
// decodes and validates its events. `null` and an omitted optional field both travel.
const sensor = await opened(new WebSocket(sensors.url(base, { device: "kitchen" })));
const replies = collect<SensorEvent>((onData) => sensors.subscribe(sensor, onData), 3);
await sensors.publish(sensor, { type: "report", celsius: [20.5, 21.5], label: "morning" });
await sensors.publish(sensor, { type: "report", celsius: [], label: null });
await sensors.publish(sensor, { type: "ping" });
assert.deepEqual(await replies, [
  { ok: true, msg: { type: "recorded", device: "kitchen", count: 2, mean: 21, label: "morning" } },
  { ok: true, msg: { type: "recorded", device: "kitchen", count: 0, mean: 0, label: null } },
  { ok: true, msg: { type: "pong" } },
]);
// A command of the wrong shape is refused before it is encoded, as on a JSON channel.
await assert.rejects(
  sensors.publish(sensor, { type: "report", celsius: ["hot"] } as unknown as SensorCommand),
  { message: "report.celsius[0]: expected number, got string" },
);
sensor.close();
await assert.rejects(sensors.publish(sensor, { type: "ping" }), /not open/);

// The raw relay: text and binary frames reach everyone on the topic byte for byte, the sender
// included; text stays a string and binary comes as a Uint8Array.
const ann = await opened(new WebSocket(relay.url(base, { topic: "room" })));
const bob = await opened(new WebSocket(relay.url(base, { topic: "room" })));
const annHears = collect<string | Uint8Array>((onData) => relay.subscribe(ann, onData), 3);
const bobHears = collect<string | Uint8Array>((onData) => relay.subscribe(bob, onData), 3);
const bytes = new Uint8Array([0, 255, 1, 128, 0xc1]);
await relay.publish(ann, "héllo ✓");
await relay.publish(ann, bytes);
// A MessagePack-encoded command sent on the relay shows what the sensors channel puts on the
// wire: one binary frame, a map with field names as keys.
await sensors.publish(ann, { type: "report", celsius: [1.5], label: undefined });
/** The bytes of a frame the relay passed on. */
const bytesOf = (received: Received<string | Uint8Array> | undefined): Uint8Array => {
  assert.ok(received?.ok && received.msg instanceof Uint8Array, `${JSON.stringify(received)}`);
  return received.msg;
};
for (const heard of [await annHears, await bobHears]) {
  assert.deepEqual(heard[0], { ok: true, msg: "héllo ✓" });
  assert.deepEqual([...bytesOf(heard[1])], [...bytes]);
  // `undefined` is left out, as JSON.stringify leaves it out.
  assert.deepEqual(decode(bytesOf(heard[2])), { type: "report", celsius: [1.5] });
}
// Anything else is refused rather than sent as something else.
await assert.rejects(relay.publish(ann, 42 as unknown as string), /expected a string or a Uint8Array/);

// Frames the MessagePack channel cannot use, bounced off the relay by the Rust server: each is
// an error in the callback, never an exception, and a good frame after them still arrives.
const bounce = collect<SensorEvent>((onData) => sensors.subscribe(bob, onData), 4);
await relay.publish(ann, encode({ type: "recorded", device: "x", count: "two", mean: 1 }));
await relay.publish(ann, "a text frame");
await relay.publish(ann, new Uint8Array([0xc1]));
await relay.publish(ann, encode({ type: "pong" }));
const [wrongShape, text, undecodable, pong] = await bounce;
assert.ok(wrongShape?.ok === false, `${JSON.stringify(wrongShape)}`);
assert.equal(wrongShape.err.message, "recorded.count: expected integer, got string");
assert.ok(text?.ok === false, `${JSON.stringify(text)}`);
assert.match(text.err.message, /expected a binary frame, got a text frame/);
assert.ok(undecodable?.ok === false && undecodable.err instanceof Error, `${JSON.stringify(undecodable)}`);
assert.deepEqual(pong, { ok: true, msg: { type: "pong" } });
ann.close();
bob.close();

// The server closes the MessagePack channel with 1003 (unsupported data) on a text frame.
const careless = await opened(new WebSocket(sensors.url(base, { device: "careless" })));
const closed = new Promise<number>((resolve) => careless.once("close", (code: number) => resolve(code)));
careless.send(JSON.stringify({ type: "ping" }));
assert.equal(await closed, 1003);

// The reconnecting connection speaks both codecs too: MessagePack typed both ways, raw frames
// as they are.
{
  const sensorConnection = sensors.connect(base, { device: "connection" }, { WebSocket });
  const relayConnection = relay.connect(base, { topic: "connection" }, { WebSocket });
  const heard: Array<Received<SensorEvent> | Reconnected> = [];
  const relayed: Array<Received<string | Uint8Array> | Reconnected> = [];
  const both = new Promise<void>((resolve) => {
    const check = () => heard.length === 1 && relayed.length === 2 && resolve();
    sensorConnection.subscribe((received) => (heard.push(received), check()));
    relayConnection.subscribe((received) => (relayed.push(received), check()));
  });
  // Queued until open, then sent.
  sensorConnection.send({ type: "ping" });
  relayConnection.send("text as it is");
  relayConnection.send(new Uint8Array([1, 2, 3]));
  await both;
  assert.deepEqual(heard, [{ ok: true, msg: { type: "pong" } }]);
  assert.deepEqual(relayed[0], { ok: true, msg: "text as it is" });
  assert.deepEqual([...bytesOf(relayed[1] as Received<string | Uint8Array>)], [1, 2, 3]);
  assert.throws(() => sensorConnection.send({ type: "report", celsius: [true] } as never), {
    name: "ValidationError",
    message: "report.celsius[0]: expected number, got boolean",
  });
  sensorConnection.close();
  relayConnection.close();
}

// Browsers hand binary frames over as Blobs unless told otherwise: subscribing on a binary
// channel asks for ArrayBuffers, and leaves Node's own binary types alone.
const fake = (binaryType: string) => ({
  readyState: 1,
  binaryType,
  send() {},
  addEventListener() {},
  removeEventListener() {},
});
for (const [before, after] of [["blob", "arraybuffer"], ["nodebuffer", "nodebuffer"], ["arraybuffer", "arraybuffer"]]) {
  const sensorSocket = fake(before ?? "");
  sensors.subscribe(sensorSocket, () => {})();
  const relaySocket = fake(before ?? "");
  relay.subscribe(relaySocket, () => {})();
  assert.deepEqual([sensorSocket.binaryType, relaySocket.binaryType], [after, after]);
}

// With the WHATWG WebSocket (browsers; Node 22+, or 20 with --experimental-websocket) the frames
// arrive as ArrayBuffers once subscribe has asked for them.
if (typeof globalThis.WebSocket === "function") {
  const browser = new globalThis.WebSocket(sensors.url(base, { device: "browser" }));
  await new Promise((resolve, reject) => {
    browser.addEventListener("open", resolve, { once: true });
    browser.addEventListener("error", reject, { once: true });
  });
  assert.equal(browser.binaryType, "blob");
  const answer = collect<SensorEvent>((onData) => sensors.subscribe(browser, onData), 1);
  assert.equal(browser.binaryType, "arraybuffer");
  await sensors.publish(browser, { type: "ping" });
  assert.deepEqual(await answer, [{ ok: true, msg: { type: "pong" } }]);
  browser.close();
  console.log("the WHATWG WebSocket: checked");
} else {
  console.log("the WHATWG WebSocket: not in this Node, not checked");
}

console.log("binary client: all checks passed");
process.exit(0);
