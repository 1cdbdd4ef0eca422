// Opens the chat example's page in headless Chromium twice and chats between the two pages,
// across a restart of the server. The page uses the TypeScript client generated from the Rust
// types, and its reconnecting connection.
// Usage: node browser_chat.mjs http://127.0.0.1:PORT   (Chromium: $CHROMIUM, which the Rust
// test sets to the binary it found, else /usr/bin/chromium). It prints `restart server` and
// waits for `restarted` on stdin: the Rust test restarts the chat example on the same port.
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const base = process.argv[2];
if (!base) {
  console.error("usage: node browser_chat.mjs http://host:port");
  process.exit(2);
}
const timeout = 15_000;
setTimeout(() => {
  console.error("timed out");
  process.exit(1);
}, 75_000).unref();

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
try {
  const errors = [];
  const open = async (name) => {
    const page = await browser.newPage();
    page.on("pageerror", (err) => errors.push(`${name}: ${err.message}`));
    await page.goto(`${base}/?room=browser&name=${name}`);
    await page.locator("#log p", { hasText: "joined browser" }).waitFor({ timeout });
    return page;
  };
  const ann = await open("ann");
  const bob = await open("bob");
  await ann.locator("#log p", { hasText: "bob joined" }).waitFor({ timeout });

  // A phone-sized viewport is declared.
  const viewport = await ann.locator('meta[name="viewport"]').getAttribute("content");
  if (!viewport?.includes("width=device-width")) throw new Error(`viewport meta: ${viewport}`);
  await ann.locator("#status", { hasText: "connected to browser as ann" }).waitFor({ timeout });

  await ann.fill("#text", "hello from the browser");
  // Typing reaches the others (and the message, below, clears the indicator).
  await bob.locator("#typing", { hasText: "ann is typing" }).waitFor({ timeout });
  await ann.press("#text", "Enter");
  const said = (page, text) => page.locator("#log p", { hasText: text });
  await said(bob, "ann: hello from the browser").waitFor({ timeout });
  await said(ann, "ann: hello from the browser").waitFor({ timeout });
  // Each message shows its time; your own are marked as yours.
  const own = await said(ann, "ann: hello from the browser").getAttribute("class");
  const others = await said(bob, "ann: hello from the browser").getAttribute("class");
  if (own !== "own" || others === "own") throw new Error(`own message classes: ann ${own}, bob ${others}`);
  const time = await said(bob, "ann: hello from the browser").locator("time").getAttribute("datetime");
  if (!time || Math.abs(Date.parse(time) - Date.now()) > 60_000) throw new Error(`message time: ${time}`);

  // The server restarts: both pages say so, reconnect by themselves into the same room (no
  // click), and chat again.
  console.log("restart server");
  const stdin = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  await ann.locator("#status:not([data-state=open])").waitFor({ timeout });
  if ((await stdin.next()).value !== "restarted") throw new Error("the server was not restarted");
  for (const page of [ann, bob]) {
    await page.locator("#log p", { hasText: "reconnected" }).waitFor({ timeout });
    await page.locator("#status[data-state=open]").waitFor({ timeout });
  }
  await bob.fill("#text", "back again");
  await bob.press("#text", "Enter");
  await said(ann, "bob: back again").waitFor({ timeout });
  await said(bob, "bob: back again").waitFor({ timeout });

  await bob.close();
  await ann.locator("#log p", { hasText: "bob left" }).waitFor({ timeout });
  if (errors.length > 0) throw new Error(`page errors: ${errors.join("; ")}`);
  console.log("browser chat: all checks passed");
} finally {
  await browser.close();
}
process.exit(0);
