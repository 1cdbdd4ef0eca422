// Checks a module generated from examples/contract_types.rs: it compiles strict (types used
// below must exist and narrow), and its validator accepts real serde_json output and rejects
// near misses, and its session wrappers route publications by validity (against a stand-in for
// the centrifuge SDK's client). Run by the Rust test `typescript_handles_every_serde_shape`:
//   node contract_types_check.js samples.json
import { readFileSync } from "node:fs";
import assert from "node:assert/strict";
import type { Centrifuge } from "centrifuge";
import { schemaOf, validate, ValidationError } from "./ws-channels.js";
import {
  deleteChannel,
  error,
  subscribeDelete,
  subscribeError,
  validateChannel,
  type ErrorMessage,
  type Internal,
  type Odd,
  type Page,
  type Page2,
} from "./contract_types.js";

// Type level: tags narrow (the newtype variant keeps its tag), two instantiations of one
// generic stay distinct, a flattened map sits beside named fields.
export function describe(kind: Internal): string {
  switch (kind.type) {
    case "unit":
      return "unit";
    case "struct":
      return `${kind.x}`;
    case "wrapped":
      return `${kind.a}`;
  }
}
export const pages: [Page, Page2] = [{ items: [{ name: "ann" }] }, { items: [{ total: 5 }] }];
export const odd: Odd = { int_map: { "1": "one" }, ordered: {}, constructor: "c", letter: "x", pair: [1, 2], weight: 1.5 };
export const failure: ErrorMessage = { code: 3 };
export const channels = [deleteChannel.address, validateChannel.address, error.address];

// Runtime: every real serde_json sample is valid. Every channel carries its contract's schemas.
const schemas = deleteChannel.schemas;
const samples = JSON.parse(readFileSync(process.argv[2] ?? "", "utf8")) as Record<string, unknown[]>;
for (const [name, values] of Object.entries(samples)) {
  for (const value of values) {
    assert.equal(validate(schemas, schemaOf(schemas, name), value, name), null, `${name}: ${JSON.stringify(value)}`);
  }
}
// And near misses are not, each with its path and reason; a tag picks the variant to blame.
const goodOdd = samples["Odd"]?.[0] as Record<string, unknown>;
const goodOrder = samples["OrderQuery"]?.[0] as Record<string, unknown>;
const misses: Array<[string, unknown, string]> = [
  ["Odd", { ...goodOdd, letter: "ab" }, "Odd.letter: longer than 1 characters"],
  ["Odd", { ...goodOdd, pair: [1] }, "Odd.pair: fewer than 2 items"],
  ["Odd", { ...goodOdd, int_map: { "1": 5 } }, "Odd.int_map.1: expected string, got number"],
  [
    "Odd",
    Object.fromEntries(Object.entries(goodOdd).filter(([key]) => key !== "constructor")),
    'Odd: missing property "constructor"',
  ],
  ["Page2", { items: [{ name: "not an order" }] }, 'Page2.items[0]: missing property "total"'],
  ["OrderQuery", { ...goodOrder, kind: { type: "wrapped" } }, 'OrderQuery.kind.wrapped: missing property "a"'],
  ["OrderQuery", { ...goodOrder, kind: { type: "round" } }, 'OrderQuery.kind.type: expected one of "unit", "struct", "wrapped"'],
  ["OrderQuery", { ...goodOrder, shape: { Circle: { r: "big" } } }, "OrderQuery.shape.Circle.r: expected number, got string"],
  ["OrderQuery", { ...goodOrder, shape: { Square: null } }, "OrderQuery.shape.Square: expected number, got null"],
  ["OrderQuery", { ...goodOrder, step: { t: "Go" } }, 'OrderQuery.step.Go: missing property "c"'],
  ["OrderQuery", { ...goodOrder, step: { t: "Go", c: -1 } }, "OrderQuery.step.Go.c: below the minimum 0"],
  ["Array_of_User", [{ name: 1 }], "Array_of_User[0].name: expected string, got number"],
  ["Event", { right: 1 }, 'Event: missing property "left"'],
];
for (const [name, value, problem] of misses) {
  assert.equal(validate(schemas, schemaOf(schemas, name), value, name), problem, `${name}: ${JSON.stringify(value)}`);
}
// Undefined properties are not sent, so they are not checked.
assert.equal(validate(schemas, schemaOf(schemas, "Odd"), { ...goodOdd, maybe: undefined }, "Odd"), null);
// Session wrappers, against a stand-in for the SDK's client: what they subscribe to, where each
// publication goes, what publish sends.
type Listener = (ctx: { data: unknown; channel: string }) => void;
const created: Array<{ channel: string; listeners: Map<string, Listener>; published: unknown[]; subscribed: boolean }> = [];
const removed: string[] = [];
const fake = {
  newSubscription(channel: string) {
    const sub = {
      channel,
      listeners: new Map<string, Listener>(),
      published: [] as unknown[],
      subscribed: false,
      on(event: string, listener: Listener) {
        sub.listeners.set(event, listener);
        return sub;
      },
      subscribe() {
        sub.subscribed = true;
      },
      unsubscribe() {
        sub.subscribed = false;
      },
      async publish(data: unknown) {
        sub.published.push(data);
        return {};
      },
    };
    created.push(sub);
    return sub;
  },
  removeSubscription(sub: { channel: string } | null) {
    if (sub !== null) removed.push(sub.channel);
  },
} as unknown as Centrifuge;
const heard: unknown[] = [];
const refused: string[] = [];
const orders = subscribeDelete(fake, {}, {
  onMessage: (page) => heard.push(page.items[0]?.total),
  onInvalid: (err) => refused.push(err.message),
});
const [ordersSub] = created;
assert.ok(ordersSub !== undefined && ordersSub.subscribed, "subscribed at once");
assert.equal(ordersSub.channel, "orders");
assert.equal(orders.channel, "orders");
ordersSub.listeners.get("publication")?.({ channel: "orders", data: { items: [{ total: 5 }] } });
ordersSub.listeners.get("publication")?.({ channel: "orders", data: { items: [{ total: "five" }] } });
assert.deepEqual(heard, [5]);
assert.deepEqual(refused, ["items[0].total: expected integer, got string"]);
await orders.publish({ kind: { type: "unit" }, shape: "Empty", step: { t: "Stop" } });
assert.equal(ordersSub.published.length, 1);
await assert.rejects(
  // @ts-expect-error: not a valid OrderQuery, refused before it is sent
  orders.publish({ kind: { type: "round" } }),
  (err: unknown) => err instanceof ValidationError,
);
assert.equal(ordersSub.published.length, 1, "an invalid message is not sent");
orders.unsubscribe();
assert.deepEqual(removed, ["orders"]);
// A server-only channel: subscribe, no publish. Its literal address is kept as it is.
const errors = subscribeError(fake, {}, { onMessage: () => {} });
assert.equal(errors.channel, "star*/errors");
assert.ok(!("publish" in errors));
console.log("contract types: all checks passed");
