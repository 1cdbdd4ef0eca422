// What the session scripts share: one JSON line per event on stdout, a bound on the whole run,
// and the client-level events of the Centrifugo SDK (a server-side subscription's), logged and
// kept so a script can wait for one.

/** Prints one event as a JSON line (what the Rust side reads). */
export const log = (o) => console.log(JSON.stringify(o));

/** Ends the process with status 2 if it still runs after `ms`. */
export function stopAfter(script, ms) {
  setTimeout(() => {
    console.error(`${script}: still running after ${ms} ms`);
    process.exit(2);
  }, ms).unref();
}

/**
 * Logs `client`'s own `connected`, `subscribed`, `unsubscribed` and `publication` events, and
 * keeps them: `until(what, test, ms)` resolves once `test(seen)` holds, or fails after `ms`.
 * `seen.publications` holds `"<channel> <data.text>"`, `seen.unsubscribed` the channels.
 */
export function watch(client) {
  const seen = { publications: [], unsubscribed: [] };
  let wake = () => {};
  client.on('connected', (ctx) => log({ ev: 'connected', client: ctx.client }));
  client.on('subscribed', (ctx) => log({ ev: 'subscribed', channel: ctx.channel }));
  client.on('unsubscribed', (ctx) => {
    // The SDK's server-side unsubscribe event says the channel only.
    log({ ev: 'unsubscribed', channel: ctx.channel });
    seen.unsubscribed.push(ctx.channel);
    wake();
  });
  client.on('publication', (ctx) => {
    log({ ev: 'publication', channel: ctx.channel, data: ctx.data });
    seen.publications.push(`${ctx.channel} ${ctx.data.text}`);
    wake();
  });
  const until = (what, test, ms) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
      wake = () => {
        if (test(seen)) {
          clearTimeout(timer);
          resolve();
        }
      };
      wake();
    });
  const publication = (text, ms) => until(`publication ${text}`, (s) => s.publications.includes(text), ms);
  return { until, publication };
}
