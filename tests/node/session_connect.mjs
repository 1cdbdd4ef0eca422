// The Centrifugo JS SDK (centrifuge@5.8.0, pinned in package.json) against a ws-channels
// sessions endpoint: `URL` is the endpoint's ws:// URL. Prints one JSON line per event, read by
// tests/sessions.rs (`the_centrifuge_sdk_connects_and_is_refused_for_good`):
//
// 1. token `ann`: connecting, connected (with the client id and the reply's data), then a
//    client-side disconnect;
// 2. token `bob`, which the server refuses with 101: connecting, disconnected with code 101,
//    then `quiet` with the number of reconnect attempts seen in the next 3 s (0: final).
//
// Exits by itself; every wait is bounded.
import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';

const url = process.env.URL;
const log = (o) => console.log(JSON.stringify(o));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function client(token) {
  const c = new Centrifuge(url, {
    websocket: WebSocket,
    token,
    minReconnectDelay: 100,
    maxReconnectDelay: 1000,
    timeout: 5000,
  });
  c.on('connecting', (ctx) => log({ ev: 'connecting', token, code: ctx.code }));
  c.on('connected', (ctx) => log({ ev: 'connected', token, client: ctx.client, data: ctx.data }));
  c.on('disconnected', (ctx) => log({ ev: 'disconnected', token, code: ctx.code, reason: ctx.reason }));
  c.on('error', (ctx) => console.error('error', token, JSON.stringify(ctx.error)));
  return c;
}

function once(c, event, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    c.once(event, (ctx) => {
      clearTimeout(timer);
      resolve(ctx);
    });
  });
}

try {
  const ann = client('ann');
  const connected = once(ann, 'connected', 5000);
  ann.connect();
  await connected;
  const gone = once(ann, 'disconnected', 5000);
  ann.disconnect();
  await gone;

  const bob = client('bob');
  const refused = once(bob, 'disconnected', 5000);
  bob.connect();
  await refused;
  let connecting = 0;
  bob.on('connecting', () => connecting++);
  await sleep(3000);
  log({ ev: 'quiet', token: 'bob', connecting, state: bob.state });
  bob.disconnect();
  process.exit(0);
} catch (error) {
  console.error(String(error));
  process.exit(1);
}
