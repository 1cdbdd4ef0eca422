// The Centrifugo JS SDK (centrifuge@5.8.0) and the chat example's notices: `URL` is the chat's
// sessions endpoint. Its hook subscribes every session to its user's `notices/<name>` at
// connect (server-side). Prints one JSON line per event, read by tests/chat_example.rs
// (`the_centrifuge_sdk_gets_its_notices_from_a_server_side_subscription`):
//
// 1. connects with the token `ann`: `connected`, the client-level `subscribed` of
//    `notices/ann` (no `subscribe` call of its own), its welcome as a client-level
//    `publication`; prints `ready`, and the Rust side POSTs a notice to /notices/ann (which
//    the chat publishes through its hub);
// 2. waits for that notice, prints `done`, disconnects.
//
// Exits by itself; every wait is bounded.
import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';

const log = (o) => console.log(JSON.stringify(o));
setTimeout(() => {
  console.error('session_chat_notices.mjs: still running after 20 s');
  process.exit(2);
}, 20000).unref();

const client = new Centrifuge(process.env.URL, { websocket: WebSocket, token: 'ann', timeout: 5000 });
const texts = [];
let wake = () => {};
client.on('connected', () => log({ ev: 'connected' }));
client.on('subscribed', (ctx) => log({ ev: 'subscribed', channel: ctx.channel }));
client.on('publication', (ctx) => {
  log({ ev: 'publication', channel: ctx.channel, data: ctx.data });
  texts.push(ctx.data.text);
  wake();
});

function notice(text, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no notice ${text} within ${ms} ms`)), ms);
    const check = () => {
      if (texts.includes(text)) {
        clearTimeout(timer);
        resolve();
      }
    };
    wake = check;
    check();
  });
}

try {
  client.connect();
  await notice('welcome, ann', 5000);
  log({ ev: 'ready' });
  await notice('hello ann', 5000);
  log({ ev: 'done' });
  client.disconnect();
  process.exit(0);
} catch (error) {
  console.error(String(error));
  client.disconnect();
  process.exit(1);
}
