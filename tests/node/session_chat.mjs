// The Centrifugo JS SDK (centrifuge@5.8.0, pinned in package.json) against the chat example's
// sessions (examples/chat, `/connection/websocket`): `URL` is that endpoint's ws:// URL. Prints
// one JSON line per event, read by tests/chat_example.rs
// (`the_centrifuge_sdk_chats_with_direct_clients_and_survives_a_restart`), which acts on the
// lines marked (→):
//
// 1. tokens the chat refuses (empty, blank, 40 characters, a control character), each on a
//    client of its own: `refused` with the `disconnected` code (101) and reason, and how many
//    reconnect attempts followed in the next 3 s (none: final);
// 2. token `ann`: connects and subscribes to `chat/lobby`, `chat/dev` and `chat/caf%C3%A9`,
//    then `ready` (→ the Rust side checks each room counts one user) with the number of
//    WebSockets the SDK opened (1);
// 3. says `hi from ann` in `chat/dev` and waits for it to come back as a publication;
// 4. `direct` (→ a direct client `bob` joins `/chat/lobby?name=bob` and says `hello from
//    bob`): waits for bob's `joined` and his message, says `hi bob` in the lobby, then
//    `published` (→ bob reads it);
// 5. publishes data that is no chat command, twice: `publish-error` with the reply's code
//    (107) for each;
// 6. unsubscribes `chat/dev`, then `unsubscribed` (→ the Rust side waits for the room to be
//    empty, a direct client `carol` says something in it, then bob says `last` in the
//    lobby): waits for `last`, then `silence` with the pushes of `chat/dev` the socket carried
//    after the unsubscribe (read beneath the SDK, which would drop them);
// 7. `restart` (→ the Rust side kills the chat by its pid and starts it again on the same
//    port): waits for the SDK to lose the connection, reconnect and subscribe again to the
//    lobby and the café by itself, then `resubscribed` with the sockets opened so far (2) and
//    the state of `chat/dev` (still unsubscribed) (→ a direct client `dan` joins the lobby and
//    says `back again`);
// 8. waits for `back again`, says `after restart` in the café and waits for it, then
//    disconnects: `done`.
//
// Exits by itself; every wait is bounded.
import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';

const url = process.env.URL;
const log = (o) => console.log(JSON.stringify(o));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Never hang: the Rust side bounds the whole run too.
setTimeout(() => {
  console.error('session_chat.mjs: still running after 80 s');
  process.exit(2);
}, 80000).unref();

/** Polls `test` every 20 ms until it holds, for at most `ms`. */
async function until(test, what, ms = 10000) {
  const deadline = Date.now() + ms;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(20);
  }
}

// 1. Refused tokens, all at once (the 3 s of quiet are waited together).
async function refused(token) {
  const c = new Centrifuge(url, { websocket: WebSocket, token, minReconnectDelay: 100, maxReconnectDelay: 1000 });
  let disconnected = null;
  let connecting = 0;
  c.on('connecting', () => connecting++);
  c.on('disconnected', (ctx) => {
    if (disconnected === null) disconnected = { code: ctx.code, reason: ctx.reason, at: connecting };
  });
  c.connect();
  await until(() => disconnected !== null, `token ${JSON.stringify(token)}: disconnected`, 5000);
  await sleep(3000);
  const state = c.state;
  c.disconnect();
  return { ev: 'refused', token, code: disconnected.code, reason: disconnected.reason, reconnects: connecting - disconnected.at, state };
}

// The raw frames beneath the SDK: the sockets it opened, and once `chat/dev` is
// unsubscribed, any push of it.
let sockets = 0;
let devAfter = null;
class Spy extends WebSocket {
  constructor(...args) {
    super(...args);
    sockets++;
    this.on('message', (data) => {
      if (devAfter === null) return;
      for (const line of String(data).trim().split('\n')) {
        try {
          const message = JSON.parse(line);
          if (message.push && message.push.channel === 'chat/dev') devAfter.push(line);
        } catch {
          // Not JSON: the SDK complains on stderr itself.
        }
      }
    });
  }
}

const pubs = [];
const said = (channel, user, text) => () =>
  pubs.some((p) => p.channel === channel && p.data.type === 'message' && p.data.user === user && p.data.text === text);
const joined = (channel, user) => () =>
  pubs.some((p) => p.channel === channel && p.data.type === 'joined' && p.data.user === user);

try {
  // Logged in this order, whichever is refused first.
  for (const line of await Promise.all(['', ' ', 'x'.repeat(40), 'a\u001bb'].map(refused))) log(line);

  // 2.
  const c = new Centrifuge(url, {
    websocket: Spy,
    token: 'ann',
    minReconnectDelay: 100,
    maxReconnectDelay: 1000,
    timeout: 5000,
  });
  const events = [];
  c.on('connecting', (ctx) => { events.push('connecting'); log({ ev: 'connecting', code: ctx.code, reason: ctx.reason }); });
  c.on('connected', (ctx) => { events.push('connected'); log({ ev: 'connected', client: ctx.client }); });
  c.on('disconnected', (ctx) => log({ ev: 'disconnected', code: ctx.code, reason: ctx.reason }));
  const subscribed = {};
  const subs = {};
  for (const channel of ['chat/lobby', 'chat/dev', 'chat/caf%C3%A9']) {
    const sub = c.newSubscription(channel);
    subscribed[channel] = 0;
    sub.on('subscribed', () => { subscribed[channel]++; log({ ev: 'subscribed', channel }); });
    sub.on('unsubscribed', (ctx) => log({ ev: 'unsubscribed', channel, code: ctx.code, reason: ctx.reason }));
    sub.on('error', (ctx) => log({ ev: 'sub-error', channel, code: ctx.error.code, message: ctx.error.message }));
    sub.on('publication', (ctx) => {
      log({ ev: 'pub', channel, data: ctx.data });
      pubs.push({ channel, data: ctx.data });
    });
    sub.subscribe();
    subs[channel] = sub;
  }
  const lobby = subs['chat/lobby'];
  const dev = subs['chat/dev'];
  const cafe = subs['chat/caf%C3%A9'];
  c.connect();
  await c.ready(5000);
  await Promise.all(Object.values(subs).map((sub) => sub.ready(5000)));
  log({ ev: 'ready', sockets });

  // 3.
  await dev.publish({ type: 'say', text: 'hi from ann' });
  await until(said('chat/dev', 'ann', 'hi from ann'), 'hi from ann');

  // 4.
  log({ ev: 'direct' });
  await until(joined('chat/lobby', 'bob'), 'bob joined');
  await until(said('chat/lobby', 'bob', 'hello from bob'), 'hello from bob');
  await lobby.publish({ type: 'say', text: 'hi bob' });
  log({ ev: 'published', text: 'hi bob' });
  await until(said('chat/lobby', 'ann', 'hi bob'), 'hi bob');

  // 5.
  for (const [kind, data] of [
    ['unknown type', { type: 'shout', text: 'hey' }],
    ['not an object', 'hello'],
  ]) {
    try {
      await lobby.publish(data);
      log({ ev: 'publish-accepted', kind });
    } catch (error) {
      log({ ev: 'publish-error', kind, code: error.code, message: error.message });
    }
  }

  // 6.
  devAfter = [];
  dev.unsubscribe();
  log({ ev: 'unsubscribed-dev' });
  await until(said('chat/lobby', 'bob', 'last'), 'last');
  log({ ev: 'silence', devAfter });

  // 7.
  const before = events.length;
  log({ ev: 'restart' });
  await until(() => events.slice(before).includes('connecting'), 'the connection lost', 15000);
  await until(() => events.slice(before).includes('connected'), 'reconnected', 20000);
  await until(() => subscribed['chat/lobby'] === 2 && subscribed['chat/caf%C3%A9'] === 2, 'resubscribed', 10000);
  log({ ev: 'resubscribed', sockets, dev: dev.state, subscribed });

  // 8.
  await until(said('chat/lobby', 'dan', 'back again'), 'back again');
  await cafe.publish({ type: 'say', text: 'after restart' });
  await until(said('chat/caf%C3%A9', 'ann', 'after restart'), 'after restart');
  const gone = new Promise((resolve) => c.once('disconnected', resolve));
  c.disconnect();
  await gone;
  log({ ev: 'done' });
  process.exit(0);
} catch (error) {
  // The SDK rejects with plain objects ({code, message}), not Errors.
  const text = error instanceof Error ? String(error) : JSON.stringify(error);
  console.error(`session_chat.mjs: ${text}`);
  log({ ev: 'failed', error: text });
  process.exit(1);
}
