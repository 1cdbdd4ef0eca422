// Opens the chat example's page in headless Chromium twice and chats between the two pages.
// The page uses the TypeScript client generated from the Rust types.
// Usage: node browser_chat.mjs http://127.0.0.1:PORT   (Chromium: $CHROMIUM, which the Rust
// test sets to the binary it found, else /usr/bin/chromium)
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
}, 45_000).unref();

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

  await ann.fill("#text", "hello from the browser");
  // Typing reaches the others (and the message, below, clears the indicator).
  await bob.locator("#typing", { hasText: "ann is typing" }).waitFor({ timeout });
  await ann.press("#text", "Enter");
  await bob.locator("#log p", { hasText: "ann: hello from the browser" }).waitFor({ timeout });
  await ann.locator("#log p", { hasText: "ann: hello from the browser" }).waitFor({ timeout });

  await bob.close();
  await ann.locator("#log p", { hasText: "bob left" }).waitFor({ timeout });
  if (errors.length > 0) throw new Error(`page errors: ${errors.join("; ")}`);
  console.log("browser chat: all checks passed");
} finally {
  await browser.close();
}
process.exit(0);
