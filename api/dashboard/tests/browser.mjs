// The dashboard in a real browser: Debian's chromium, headless, driven by playwright-core (which never
// downloads a browser), against a real `trading-agent api` on a real PostgreSQL. Run by the Rust test
// api/tests/browser.rs, which seeds the database, starts the api and passes:
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
  const apiRow = page.locator("[data-testid=components] tr", { hasText: "serving this page" });
  const apiDigest = await apiRow.locator("[data-digest]").getAttribute("data-digest");
  check(apiDigest === expect.api_digest, `the api row shows its own digest ${expect.api_digest}, got ${apiDigest}`);
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
  // Per-strategy statistics: trades, win rate, profit and drawdown as the database holds them.
  const statsRow = page.locator("[data-testid=strategy-stats] tr", { hasText: expect.strategy });
  const statsCells = await statsRow.locator("td").allTextContents();
  const cellNumber = (text) => Number(text.replace(/[,+]/g, ""));
  check(statsCells.length === 8, `stats columns: ${statsCells}`);
  check(statsCells[1] === "1" && statsCells[2] === "1", `one open and one closed trade: ${statsCells}`);
  check(Math.abs(cellNumber(statsCells[6]) - Number(expect.closed_profit)) < 0.005, `profit ${expect.closed_profit}: ${statsCells}`);
  check(Math.abs(cellNumber(statsCells[7]) - Number(expect.max_drawdown)) < 0.005, `drawdown ${expect.max_drawdown}: ${statsCells}`);
  // Filter by status and symbol, sort by profit both ways.
  const tradeIds = () => page.$$eval("[data-testid=trades] tbody tr", (rows) => rows.map((r) => Number(r.dataset.trade)));
  check((await tradeIds()).length === expect.trades, `all ${expect.trades} trades listed`);
  await page.selectOption("#trade-status", "closed");
  await page.waitForFunction((id) => {
    const rows = [...document.querySelectorAll("[data-testid=trades] tbody tr")];
    return rows.length === 1 && rows[0].dataset.trade === String(id);
  }, expect.closed_trade);
  await page.selectOption("#trade-status", "");
  await page.selectOption("#trade-strategy", String(expect.strategy_id));
  await page.waitForFunction((n) => document.querySelectorAll("[data-testid=trades] tbody tr").length === n, 2);
  await page.click("[data-sort=profit]");
  const ascending = await tradeIds();
  check(ascending[ascending.length - 1] === expect.closed_trade, `closed trade (the only profit) last ascending: ${ascending}`);
  await page.click("[data-sort=profit]");
  const descending = await tradeIds();
  check(descending[0] === expect.closed_trade, `closed trade first descending: ${descending}`);
  await page.selectOption("#trade-strategy", "");
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
  const made = page.locator("[data-testid=strategies] tr", { hasText: "browser-made" });
  await made.waitFor();
  // Edit it (the form comes filled in), then disable it.
  await made.locator("button", { hasText: "Edit" }).click();
  check((await page.inputValue("#s-name")) === "browser-made", "the edit form holds the strategy");
  await page.fill("#s-params", '{"fast": 6, "slow": 15}');
  await page.click("#strategy-form button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#strategy-answer")?.textContent?.startsWith("200"));
  await made.locator("button", { hasText: "Disable" }).click();
  await made.locator(".badge", { hasText: "disabled" }).waitFor();

  // Control: stop-entry, confirmed, and the bot state follows; a notification arrives live.
  log("control");
  await page.click("nav a[data-page=control]");
  await page.waitForFunction(() => document.querySelector("#control-bot-state")?.textContent?.startsWith("running"));
  // Every action asks first; Cancel sends nothing.
  await page.click("#bot-stop");
  await page.waitForSelector("#confirm:not([hidden])");
  check((await textOf(page, "#confirm")).includes("Stop?"), "the confirmation names the action");
  await page.locator("#confirm button", { hasText: "Cancel" }).click();
  await page.waitForSelector("#confirm", { state: "hidden" });
  check((await textOf(page, "#control-answer")) === "", "nothing sent after Cancel");
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
  // Exits still go through under stop-entry: force-exit is queued for the bot (202).
  await page.selectOption("#control-symbol", expect.symbol);
  await page.click("#force-exit");
  await page.click("#confirm-yes");
  await page.waitForFunction(() => document.querySelector("#control-answer")?.textContent?.includes("202"));
  check((await textOf(page, "#control-answer")).includes('"action": "sell"'), "the queued exit signal is shown");
  // The state change is itself an event, delivered by the stream.
  await page.locator("#feed li[data-kind=bot_state]", { hasText: "stop_entry" }).waitFor();
  const marker = `browser-${Date.now()}`;
  console.log(`NEED_EVENT ${marker}`);
  await page.locator("#feed li", { hasText: marker }).waitFor();
  await page.screenshot({ path: join(shots, "control-laptop-light.png"), fullPage: true });
  await page.click("nav a[data-page=overview]");
  await page.waitForFunction(() => document.querySelector("#bot-state")?.textContent === "stop-entry");
  check((await page.evaluate(() => document.querySelector("meta[http-equiv]"))) === null, "no policy relaxed in the page");
  // No inline script anywhere: every script is a file of the api's own origin.
  const scripts = await page.$$eval("script", (all) => all.map((s) => ({ src: s.src, inline: s.textContent.trim().length })));
  check(scripts.length > 0 && scripts.every((x) => x.src.startsWith(base) && x.inline === 0), `scripts: ${JSON.stringify(scripts)}`);

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
  // Dark mode really is dark: the page's background is dark and its text light.
  const [bg, fg] = await small.evaluate(() => {
    const lum = (c) => {
      const [r, g, b] = c.match(/\d+/g).map(Number);
      return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    const style = getComputedStyle(document.body);
    return [lum(style.backgroundColor), lum(style.color)];
  });
  check(bg < 60 && fg > 150, `dark mode: background luminance ${bg}, text ${fg}`);
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
