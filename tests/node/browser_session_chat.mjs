// Opens the chat example's sessions page (/sessions.html, the centrifuge SDK's browser build)
// in headless Chromium, in two rooms over one session, and chats with direct clients (raw
// WebSockets to /chat/<room>, from Node), across a restart of the server.
// Usage: node browser_session_chat.mjs http://127.0.0.1:PORT   (Chromium: $CHROMIUM, which the
// Rust test sets to the binary it found, else /usr/bin/chromium). It prints `restart server`
// and waits for `restarted` on stdin: the Rust test (tests/chat_example.rs) kills the chat
// example and starts it again on the same port.
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";
import WebSocket from "ws";

const base = process.argv[2];
if (!base) {
  console.error("usage: node browser_session_chat.mjs http://host:port");
  process.exit(2);
}
const wsBase = base.replace(/^http/, "ws");
const timeout = 15_000;
setTimeout(() => {
  console.error("timed out");
  process.exit(1);
}, 100_000).unref();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A direct client of one room: its events, and a bounded wait for one. */
async function direct(room, name) {
  const ws = new WebSocket(`${wsBase}/chat/${room}?name=${name}`);
  const events = [];
  ws.on("message", (data) => events.push(JSON.parse(String(data))));
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  return {
    events,
    say: (text) => ws.send(JSON.stringify({ type: "say", text })),
    close: () => ws.terminate(),
    async until(test, what) {
      const deadline = Date.now() + timeout;
      while (!events.some(test)) {
        if (Date.now() > deadline) throw new Error(`${name} did not get ${what}: ${JSON.stringify(events)}`);
        await sleep(20);
      }
      return events.find(test);
    },
  };
}
const message = (user, text) => (e) => e.type === "message" && e.user === user && e.text === text;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  // No downloads, no sandbox (root in CI), and none of Chromium's own network traffic.
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const clients = [];
try {
  const errors = [];
  /** Opens the page; `sockets` lists the WebSockets it opens. */
  const open = async (query) => {
    const page = await browser.newPage();
    const sockets = [];
    page.on("pageerror", (err) => errors.push(`${query}: ${err.message}`));
    page.on("websocket", (ws) => sockets.push(ws.url()));
    await page.goto(`${base}/sessions.html?${query}`);
    return { page, sockets };
  };
  const { page: ann, sockets } = await open("name=ann&rooms=browser,kitchen");
  const room = (name) => ann.locator(`section[data-room="${name}"]`);
  const said = (name, text) => room(name).locator(".log p", { hasText: text });
  await ann.locator("#status[data-state=open]", { hasText: "connected as ann" }).waitFor({ timeout });
  await said("browser", "joined browser").waitFor({ timeout });
  await said("kitchen", "joined kitchen").waitFor({ timeout });

  // A direct client in one of the rooms: the page hears him join, and they talk.
  const bob = await direct("browser", "bob");
  clients.push(bob);
  await said("browser", "bob joined").waitFor({ timeout });
  await room("browser").locator(".text").fill("hello bob");
  // Typing, published over the session, reaches the direct client.
  await bob.until((e) => e.type === "typing" && e.user === "ann", "ann typing");
  await room("browser").locator(".text").press("Enter");
  await bob.until(message("ann", "hello bob"), "ann's hello");
  await said("browser", "ann: hello bob").waitFor({ timeout });
  bob.say("hi ann");
  await said("browser", "bob: hi ann").waitFor({ timeout });
  const own = await said("browser", "ann: hello bob").getAttribute("class");
  const others = await said("browser", "bob: hi ann").getAttribute("class");
  if (own !== "own" || others === "own") throw new Error(`own message classes: ann ${own}, bob ${others}`);
  const time = await said("browser", "bob: hi ann").locator("time").getAttribute("datetime");
  if (!time || Math.abs(Date.parse(time) - Date.now()) > 60_000) throw new Error(`message time: ${time}`);

  // The other room, over the same session, keeps to itself.
  const carol = await direct("kitchen", "carol");
  clients.push(carol);
  await said("kitchen", "carol joined").waitFor({ timeout });
  await room("kitchen").locator(".text").fill("anyone in the kitchen?");
  await room("kitchen").locator(".text").press("Enter");
  await said("kitchen", "ann: anyone in the kitchen?").waitFor({ timeout });
  await carol.until(message("ann", "anyone in the kitchen?"), "ann's question");
  for (const [where, text] of [["kitchen", "bob"], ["browser", "kitchen?"], ["browser", "carol"]]) {
    const count = await said(where, text).count();
    if (count !== 0) throw new Error(`${where} shows "${text}" ${count} times`);
  }
  if (bob.events.some((e) => e.type === "message" && e.text === "anyone in the kitchen?")) {
    throw new Error("the kitchen's message reached the browser room");
  }
  // Two rooms, one WebSocket: the session's.
  if (sockets.length !== 1 || !sockets[0].endsWith("/connection/websocket")) {
    throw new Error(`the page opened ${JSON.stringify(sockets)}`);
  }

  // The server restarts: the page says so, reconnects and rejoins both rooms by itself.
  console.log("restart server");
  const stdin = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  await ann.locator("#status:not([data-state=open])").waitFor({ timeout });
  if ((await stdin.next()).value !== "restarted") throw new Error("the server was not restarted");
  for (const name of ["browser", "kitchen"]) {
    await said(name, "reconnected").waitFor({ timeout });
  }
  await ann.locator("#status[data-state=open]", { hasText: "connected as ann" }).waitFor({ timeout });
  bob.close();
  carol.close();
  const bob2 = await direct("browser", "bob");
  clients.push(bob2);
  bob2.say("back again");
  await said("browser", "bob: back again").waitFor({ timeout });
  await room("browser").locator(".text").fill("welcome back");
  await room("browser").locator(".text").press("Enter");
  await bob2.until(message("ann", "welcome back"), "ann's welcome back");
  if (sockets.length !== 2) throw new Error(`after one restart the page opened ${JSON.stringify(sockets)}`);

  // Leaving a room unsubscribes it: the others there see it; the other room stays.
  const carol2 = await direct("kitchen", "carol");
  clients.push(carol2);
  await said("kitchen", "carol joined").nth(1).waitFor({ timeout });
  await room("kitchen").locator(".leave").click();
  await carol2.until((e) => e.type === "left" && e.user === "ann", "ann left");
  if ((await room("kitchen").count()) !== 0) throw new Error("the kitchen is still on the page");
  bob2.say("still here?");
  await said("browser", "bob: still here?").waitFor({ timeout });

  // A name the server refuses: the page shows the server's reason, and the SDK does not
  // retry (error 101 is final).
  const long = await open(`name=${"x".repeat(40)}&rooms=browser`);
  await long.page
    .locator("#status[data-state=closed]", { hasText: "refused: the name must be 1 to 32 characters" })
    .waitFor({ timeout });
  await sleep(3000);
  if (long.sockets.length !== 1) throw new Error(`a refused page opened ${long.sockets.length} WebSockets`);
  if ((await long.page.locator("#status").getAttribute("data-state")) !== "closed") {
    throw new Error(`a refused page: ${await long.page.locator("#status").textContent()}`);
  }
  if (!(await long.page.locator("#room").isDisabled())) throw new Error("a refused page still offers to join rooms");
  await long.page.close();

  if (errors.length > 0) throw new Error(`page errors: ${errors.join("; ")}`);
  console.log("browser session chat: all checks passed");
} finally {
  for (const client of clients) client.close();
  await browser.close();
}
process.exit(0);
