// The dashboard in a real browser: Debian's chromium, headless, driven by playwright-core (which never
// downloads a browser), against a real `trading-agent api` on a real PostgreSQL. Run by the Rust test
// api/tests/dashboard.rs, which seeds the database, starts the api and passes:
//
//   BASE_URL        the api, e.g. http://127.0.0.1:41234
//   API_TOKEN       its token
//   EXPECT          JSON of what the database holds (see the test)
//   SCREENSHOT_DIR  where the screenshots go
//   CHROMIUM        the browser (default /usr/bin/chromium)
//
// To add a notification while the page is open it prints `NEED_EVENT <marker>` and the test writes
// an event whose message contains the marker; `NEED_CANDLE` makes it write the next candle. Any browser console error or page error fails the run
// (except the 401/422 answers that the wrong-token and validation steps provoke on purpose).
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const base = need("BASE_URL");
const token = need("API_TOKEN");
const expect = JSON.parse(need("EXPECT"));
const shots = need("SCREENSHOT_DIR");
mkdirSync(shots, { recursive: true });
const TIMEOUT = 15_000;

function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

function log(...args) {
  console.error("[browser]", ...args);
}

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

const consoleErrors = [];
let allowedStatus = null; // a status the current step provokes on purpose (401, 422)

function watch(page, name) {
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    const text = msg.text();
    if (allowedStatus && text.includes(`status of ${allowedStatus}`)) return;
    consoleErrors.push(`${name}: console error: ${text}`);
  });
  page.on("pageerror", (err) => consoleErrors.push(`${name}: page error: ${err.message}`));
}

async function signIn(page, withToken) {
  await page.goto(`${base}/`);
  await page.fill("#token", withToken);
  await page.click("#signin button[type=submit]");
}

async function textOf(page, selector) {
  return (await page.locator(selector).first().textContent({ timeout: TIMEOUT })) ?? "";
}

// playwright starts chromium with a fresh temporary --user-data-dir of its own and removes it after.
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
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

let failed = null;
try {
  const laptop = await browser.newContext({ viewport: { width: 1366, height: 860 }, colorScheme: "light" });
  const page = await laptop.newPage();
  page.setDefaultTimeout(TIMEOUT);
  watch(page, "laptop");

  // The page and its policy.
  const response = await page.goto(`${base}/`);
  check(response.status() === 200, `GET / answered ${response.status()}`);
  const csp = response.headers()["content-security-policy"] ?? "";
  check(csp.includes("script-src 'self'") && !csp.includes("unsafe"), `strict CSP, got: ${csp}`);
  await page.waitForSelector("#signin");

  // A wrong token is refused and not kept.
  log("wrong token");
  allowedStatus = 401;
  await signIn(page, "not-the-token-0123456789");
  await page.waitForFunction(() => document.querySelector("#signin-error")?.textContent?.includes("refused"));
  check((await page.evaluate(() => sessionStorage.length)) === 0, "nothing stored after a refused token");
  check((await page.locator("#content").count()) === 0, "no page shown without a token");
  allowedStatus = null;

  // Sign in; the overview shows the real components from the database.
  log("sign in, overview");
  await signIn(page, token);
  await page.waitForSelector("[data-testid=components]");
  for (const c of expect.components) {
    const row = page.locator("[data-testid=components] tr", { hasText: c.instance });
    await row.waitFor();
    const text = await row.textContent();
    check(text.includes(c.role), `${c.instance} row shows role ${c.role}: ${text}`);
    check(text.includes(c.stale ? "stale" : "ok"), `${c.instance} row shows ${c.stale ? "stale" : "ok"}: ${text}`);
    // The build and the image digest it runs: "is it running the new code?"
    check(text.includes(c.commit), `${c.instance} row shows its commit ${c.commit}: ${text}`);
    const digest = await row.locator("[data-digest]").getAttribute("data-digest");
    check(digest === c.digest, `${c.instance} row shows digest ${c.digest}, got ${digest}`);
    check(text.includes(c.digest.slice(0, "sha256:".length + 12)), `${c.instance} row shows the short digest: ${text}`);
  }
  check((await textOf(page, "#bot-state")) === "running", "bot running at first");
  const openRows = await page.locator("[data-testid=open-trades] tbody tr").count();
  check(openRows === expect.open_trades, `open trades: ${openRows} rows, want ${expect.open_trades}`);
  const balances = await textOf(page, "[data-testid=balances]");
  check(balances.includes(expect.currency), `balances show ${expect.currency}: ${balances}`);
  check((await page.evaluate(() => sessionStorage.getItem("trading-agent.token"))) === token, "token in sessionStorage");
  check((await page.evaluate(() => localStorage.length)) === 0, "nothing in localStorage");
  await page.waitForSelector("#equity-chart canvas");
  // The equity curve: the bot's snapshots in the range, ending at what the database says now.
  const equity = page.locator("#equity-summary [data-points]");
  await equity.waitFor();
  const points = Number(await equity.getAttribute("data-points"));
  check(points === expect.equity_points, `equity curve of ${expect.equity_points} snapshots, got ${points}`);
  const worth = await equity.getAttribute("data-current");
  check(Number(worth) === Number(expect.equity_now), `equity now ${expect.equity_now}, got ${worth}`);
  check((await page.inputValue("#equity-currency")) === expect.currency, "the account's currency first");
  await page.waitForSelector("#live-mode.live");
  await page.screenshot({ path: join(shots, "overview-laptop-light.png"), fullPage: true });

  // Market: candles and markers as stored.
  log("market");
  await page.click("nav a[data-page=market]");
  await page.waitForSelector("#symbol option", { state: "attached" });
  await page.selectOption("#symbol", expect.symbol);
  await page.selectOption("#timeframe", expect.timeframe);
  await page.waitForFunction(
    ([n, close]) => {
      const s = document.querySelector("#chart-summary [data-candles]");
      return s && s.getAttribute("data-candles") === String(n) && s.getAttribute("data-last-close") === String(close);
    },
    [expect.candles, expect.last_close],
  );
  await page.waitForSelector("#market-chart canvas");
  const markers = await page.$$eval("[data-testid=markers] tbody tr", (rows) =>
    rows.map((r) => {
      const cells = [...r.querySelectorAll("td")].map((td) => td.textContent);
      return `${cells[1]}:${cells[3]}`;
    }),
  );
  const want = [...expect.markers].sort();
  check(JSON.stringify([...markers].sort()) === JSON.stringify(want), `markers ${markers} want ${want}`);
  await page.screenshot({ path: join(shots, "market-laptop-light.png"), fullPage: true });
  // Zoom and scroll over the history with the chart's buttons.
  const visible = async () => ({
    bars: Number(await page.getAttribute("#market-chart", "data-visible-bars")),
    from: Number(await page.getAttribute("#market-chart", "data-visible-from")),
  });
  await page.waitForSelector("#market-chart[data-visible-bars]");
  const before = await visible();
  await page.click("#zoom-in");
  await page.waitForFunction(
    (bars) => Number(document.querySelector("#market-chart").getAttribute("data-visible-bars")) < bars * 0.75,
    before.bars,
  );
  const zoomed = await visible();
  await page.click("#scroll-older");
  await page.waitForFunction(
    (from) => Number(document.querySelector("#market-chart").getAttribute("data-visible-from")) < from - 10,
    zoomed.from,
  );
  await page.click("#zoom-out");
  await page.waitForFunction(
    (bars) => Number(document.querySelector("#market-chart").getAttribute("data-visible-bars")) > bars * 1.5,
    zoomed.bars,
  );
  await page.click("#scroll-newest");
  // A candle closes: the chart grows by one, live.
  console.log("NEED_CANDLE");
  await page.waitForFunction(
    ([n, close]) => {
      const s = document.querySelector("#chart-summary [data-candles]");
      return s && s.getAttribute("data-candles") === String(n) && s.getAttribute("data-last-close") === String(close);
    },
    [expect.candles + 1, expect.next_close],
  );

  // Trades: the closed trade's orders.
  log("trades");
  await page.click("nav a[data-page=trades]");
  await page.waitForSelector("[data-testid=strategy-stats]");
  await page.click(`[data-testid=trades] tr[data-trade="${expect.closed_trade}"]`);
  await page.waitForSelector("[data-testid=orders]");
  const orders = await page.locator("[data-testid=orders] tbody tr").count();
  check(orders === 2, `closed trade shows 2 orders, got ${orders}`);
  await page.screenshot({ path: join(shots, "trades-laptop-light.png"), fullPage: true });

  // Strategies: the API's validation message, as it came.
  log("strategies");
  await page.click("nav a[data-page=strategies]");
  await page.click("#new-strategy");
  await page.fill("#s-name", "browser-made");
  await page.fill("#s-params", '{"fast": 30, "slow": 10}');
  await page.fill("#s-symbols", expect.symbol);
  allowedStatus = 422;
  await page.click("#strategy-form button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#strategy-answer")?.textContent?.includes("422"));
  const refusal = await textOf(page, "#strategy-answer");
  check(refusal.includes("params.fast"), `validation message names the field: ${refusal}`);
  await page.screenshot({ path: join(shots, "strategies-laptop-light.png"), fullPage: true });
  allowedStatus = null;
  await page.fill("#s-params", '{"fast": 5, "slow": 15}');
  await page.click("#strategy-form button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#strategy-answer")?.textContent?.includes("saved"));
  await page.locator("[data-testid=strategies] tr", { hasText: "browser-made" }).waitFor();

  // Control: stop-entry, confirmed, and the bot state follows; a notification arrives live.
  log("control");
  await page.click("nav a[data-page=control]");
  await page.waitForFunction(() => document.querySelector("#control-bot-state")?.textContent?.startsWith("running"));
  await page.click("#bot-stop-entry");
  await page.waitForSelector("#confirm:not([hidden])");
  await page.click("#confirm-yes");
  await page.waitForFunction(() => document.querySelector("#control-answer")?.textContent?.includes("200"));
  check((await textOf(page, "#control-answer")).includes("stop_entry"), "the API's answer is shown");
  await page.waitForFunction(() => document.querySelector("#control-bot-state")?.textContent?.startsWith("stop-entry"));
  // An entry is refused now, and the page says what the API said.
  allowedStatus = 409;
  await page.click("#force-enter");
  await page.click("#confirm-yes");
  await page.waitForFunction(() => document.querySelector("#control-answer")?.textContent?.includes("409"));
  const refused = await textOf(page, "#control-answer");
  check(refused.includes("stop-entry"), `force-enter refused with the API's reason: ${refused}`);
  allowedStatus = null;
  // The state change is itself an event, delivered by the stream.
  await page.locator("#feed li[data-kind=bot_state]", { hasText: "stop_entry" }).waitFor();
  const marker = `browser-${Date.now()}`;
  console.log(`NEED_EVENT ${marker}`);
  await page.locator("#feed li", { hasText: marker }).waitFor();
  await page.screenshot({ path: join(shots, "control-laptop-light.png"), fullPage: true });
  await page.click("nav a[data-page=overview]");
  await page.waitForFunction(() => document.querySelector("#bot-state")?.textContent === "stop-entry");

  // A phone in dark mode.
  log("phone, dark");
  const phone = await browser.newContext({
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
    colorScheme: "dark",
  });
  const small = await phone.newPage();
  small.setDefaultTimeout(TIMEOUT);
  watch(small, "phone");
  await signIn(small, token);
  await small.waitForSelector("[data-testid=components]");
  await small.waitForSelector("#equity-chart canvas");
  const overflow = await small.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `no sideways scrolling on a phone (overflow ${overflow}px)`);
  await small.screenshot({ path: join(shots, "overview-phone-dark.png"), fullPage: true });
  await small.click("nav a[data-page=market]");
  await small.waitForSelector("#chart-summary [data-candles]");
  await small.screenshot({ path: join(shots, "market-phone-dark.png") });

  check(consoleErrors.length === 0, `browser console errors:\n  ${consoleErrors.join("\n  ")}`);
  log(`passed; screenshots in ${shots}`);
} catch (err) {
  failed = err;
} finally {
  await browser.close();
}
if (failed) {
  console.error(failed.stack ?? String(failed));
  if (consoleErrors.length) console.error(`browser console errors:\n  ${consoleErrors.join("\n  ")}`);
  process.exit(1);
}
