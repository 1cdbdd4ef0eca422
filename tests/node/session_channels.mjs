// The Centrifugo JS SDK (centrifuge@5.8.0, pinned in package.json) subscribed to three
// ws-channels channels over one session: `URL` is the sessions endpoint's ws:// URL (its query
// carries `user=ann`, which the channel's `on_connect` reads). Prints one JSON line per event,
// read by tests/sessions.rs (`the_centrifuge_sdk_subscribes_publishes_and_unsubscribes`),
// which acts on some of them:
//
// 1. connects with the token `ann`, subscribes to `chat/lobby`, `chat/kitchen` and
//    `chat/caf%C3%A9` (one socket), waits for the three subscriptions and their welcomes (sent
//    by the channel's `on_open`), then prints `ready` (the Rust side checks the server's
//    counters);
// 2. publishes `{type:'say',text:'bonjour'}` on `chat/caf%C3%A9` and waits for the broadcast
//    to come back as a publication;
// 3. publishes data that is not a client message, then a message that fails validation:
//    `publish-error` with the reply's code (107) for each;
// 4. prints `waiting`: the Rust side publishes `from hub` on `chat/lobby` through the hub and
//    has a direct client of `/chat/lobby` say `from direct`; waits for both publications;
// 5. unsubscribes `chat/kitchen` (`unsubscribed`): the Rust side waits for the channel's
//    `on_close`, publishes on `chat/kitchen` (which must reach nobody), then `last` on
//    `chat/lobby`; waits for `last`, then prints `done` with the pushes of `chat/kitchen` the
//    socket carried after the unsubscribe (read beneath the SDK, which would drop them).
//
// Exits by itself; every wait is bounded.
import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';

const url = process.env.URL;
const log = (o) => console.log(JSON.stringify(o));

// Never hang: the Rust side bounds the whole run too.
setTimeout(() => {
  console.error('session_channels.mjs: still running after 45 s');
  process.exit(2);
}, 45000).unref();

// The raw frames, beneath the SDK: once `chat/kitchen` is unsubscribed, any push of it.
let kitchenAfter = null;
class Spy extends WebSocket {
  constructor(...args) {
    super(...args);
    this.on('message', (data) => {
      if (kitchenAfter === null) return;
      for (const line of String(data).trim().split('\n')) {
        try {
          const message = JSON.parse(line);
          if (message.push && message.push.channel === 'chat/kitchen') kitchenAfter.push(line);
        } catch {
          // Not JSON: the Rust side sees the SDK's own complaint on stderr.
        }
      }
    });
  }
}

// Publications seen, and waits for one.
const seen = [];
const waiters = [];
function published(channel, data) {
  seen.push({ channel, data });
  for (const waiter of [...waiters]) {
    if (waiter.channel === channel && waiter.test(data)) {
      waiters.splice(waiters.indexOf(waiter), 1);
      clearTimeout(waiter.timer);
      waiter.resolve(data);
    }
  }
}
function publication(channel, test, what, ms = 10000) {
  const found = seen.find((p) => p.channel === channel && test(p.data));
  if (found) return Promise.resolve(found.data);
  return new Promise((resolve, reject) => {
    const waiter = { channel, test, resolve };
    waiter.timer = setTimeout(() => {
      waiters.splice(waiters.indexOf(waiter), 1);
      reject(new Error(`no publication ${what} on ${channel} within ${ms} ms`));
    }, ms);
    waiters.push(waiter);
  });
}
const said = (text) => (data) => data && data.type === 'message' && data.text === text;
const welcome = (data) => data && data.type === 'welcome';

function once(emitter, event, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    emitter.once(event, (ctx) => {
      clearTimeout(timer);
      resolve(ctx);
    });
  });
}

const c = new Centrifuge(url, {
  websocket: Spy,
  token: 'ann',
  getToken: async () => 'ann',
  minReconnectDelay: 100,
  maxReconnectDelay: 1000,
  timeout: 5000,
});
c.on('connected', (ctx) => log({ ev: 'connected', client: ctx.client }));
c.on('disconnected', (ctx) => log({ ev: 'disconnected', code: ctx.code, reason: ctx.reason }));
c.on('error', (ctx) => log({ ev: 'client-error', error: ctx.error }));

const channels = ['chat/lobby', 'chat/kitchen', 'chat/caf%C3%A9'];
const subs = channels.map((channel) => {
  const sub = c.newSubscription(channel);
  sub.on('subscribed', () => log({ ev: 'subscribed', channel }));
  sub.on('unsubscribed', (ctx) => log({ ev: 'unsubscribed', channel, code: ctx.code, reason: ctx.reason }));
  sub.on('error', (ctx) => log({ ev: 'sub-error', channel, code: ctx.error.code, message: ctx.error.message }));
  sub.on('publication', (ctx) => {
    log({ ev: 'pub', channel, data: ctx.data });
    published(channel, ctx.data);
  });
  sub.subscribe();
  return sub;
});
const [lobby, kitchen, cafe] = subs;

try {
  // 1.
  const connected = once(c, 'connected', 5000);
  c.connect();
  const { client } = await connected;
  await Promise.all(subs.map((sub) => sub.ready(5000)));
  await Promise.all(channels.map((channel) => publication(channel, welcome, 'welcome', 5000)));
  log({ ev: 'ready', client });

  // 2.
  await cafe.publish({ type: 'say', text: 'bonjour' });
  log({ ev: 'published', channel: cafe.channel });
  await publication(cafe.channel, said('bonjour'), 'bonjour', 5000);

  // 3.
  for (const [kind, data] of [
    ['undecodable', { type: 'shout', text: 'hey' }],
    ['invalid', { type: 'say', text: '' }],
  ]) {
    try {
      await cafe.publish(data);
      log({ ev: 'publish-accepted', kind });
    } catch (error) {
      log({ ev: 'publish-error', kind, code: error.code, message: error.message });
    }
  }

  // 4.
  log({ ev: 'waiting' });
  await publication(lobby.channel, said('from hub'), 'from hub');
  await publication(lobby.channel, said('from direct'), 'from direct');

  // 5.
  const unsubscribed = once(kitchen, 'unsubscribed', 5000);
  kitchenAfter = [];
  kitchen.unsubscribe();
  await unsubscribed;
  await publication(lobby.channel, said('last'), 'last');
  log({ ev: 'done', kitchenAfter });
  const gone = once(c, 'disconnected', 5000);
  c.disconnect();
  await gone;
  process.exit(0);
} catch (error) {
  // The SDK rejects with plain objects ({code, message}), not Errors.
  const text = error instanceof Error ? String(error) : JSON.stringify(error);
  console.error(`session_channels.mjs: ${text}`);
  log({ ev: 'failed', error: text });
  process.exit(1);
}
