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
import { log, stopAfter, watch } from './sdk_events.mjs';

stopAfter('session_chat_notices.mjs', 20000);
const client = new Centrifuge(process.env.URL, { websocket: WebSocket, token: 'ann', timeout: 5000 });
const { publication } = watch(client);

try {
  client.connect();
  await publication('notices/ann welcome, ann', 5000);
  log({ ev: 'ready' });
  await publication('notices/ann hello ann', 5000);
  log({ ev: 'done' });
  client.disconnect();
  process.exit(0);
} catch (error) {
  console.error(String(error));
  client.disconnect();
  process.exit(1);
}
