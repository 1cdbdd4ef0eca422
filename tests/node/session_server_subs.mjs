// The Centrifugo JS SDK (centrifuge@5.8.0) and a server-side subscription: `URL` is the
// sessions endpoint of tests/sessions.rs' notices server, whose hook subscribes the session
// of `ann` to `notices/ann` at connect. Prints one JSON line per event, read by
// `the_centrifuge_sdk_delivers_server_side_subscriptions`:
//
// 1. connects with the token `ann`: `connected`, then the client-level `subscribed` event
//    for `notices/ann` (no `subscribe` call of its own);
// 2. the channel's welcome arrives as a client-level `publication`; prints `ready`, and the
//    Rust side publishes `hello` on `notices/ann` through its hub;
// 3. waits for `hello`, prints `moving`: the Rust side ends `notices/ann` and subscribes the
//    session to `notices/extra` (`Hub::unsubscribe_session`, `Hub::subscribe_session`);
// 4. waits for the client-level `unsubscribed` of `notices/ann` and the welcome of
//    `notices/extra`, prints `done`, disconnects.
//
// Exits by itself; every wait is bounded.
import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';
import { log, stopAfter, watch } from './sdk_events.mjs';

stopAfter('session_server_subs.mjs', 20000);
const client = new Centrifuge(process.env.URL, { websocket: WebSocket, token: 'ann', timeout: 5000 });
const { until, publication } = watch(client);

try {
  client.connect();
  await publication('notices/ann welcome ann', 5000);
  log({ ev: 'ready' });
  await publication('notices/ann hello', 5000);
  log({ ev: 'moving' });
  await until('unsubscribed', (seen) => seen.unsubscribed.includes('notices/ann'), 5000);
  await publication('notices/extra welcome ann', 5000);
  log({ ev: 'done' });
  client.disconnect();
  process.exit(0);
} catch (error) {
  console.error(String(error));
  client.disconnect();
  process.exit(1);
}
