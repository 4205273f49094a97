// "Interactive within 1 s on a local api holding 100,000 candles" (tests/bench/run.sh): a fresh
// headless chromium context per run, signed in (the token placed in sessionStorage before the page
// loads), opening /#/overview and /#/market. A page counts as interactive when it has drawn its data
// (the app's performance marks `dashboard:overview` / `dashboard:market`, set after the paint that
// follows); the figure is that mark's time from navigation start. Prints one JSON object.
//
//   BASE_URL, API_TOKEN, SYMBOL (the symbol holding the candles), RUNS (default 5),
//   CHROMIUM (default /usr/bin/chromium)
import { chromium } from "playwright-core";

const base = process.env.BASE_URL;
const token = process.env.API_TOKEN;
const symbol = process.env.SYMBOL;
const runs = Number(process.env.RUNS ?? 5);
if (!base || !token || !symbol) throw new Error("BASE_URL, API_TOKEN and SYMBOL are required");

// playwright starts chromium with a fresh temporary --user-data-dir of its own and removes it after.
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});

async function measure(hash, mark) {
  const context = await browser.newContext({ viewport: { width: 1366, height: 860 } });
  await context.addInitScript(
    ([t, s]) => {
      sessionStorage.setItem("trading-agent.token", t);
      sessionStorage.setItem("market.view", new URLSearchParams({ symbol: s, timeframe: "1m" }).toString());
    },
    [token, symbol],
  );
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${base}/#/${hash}`);
  const ms = await page.evaluate(
    (name) =>
      new Promise((resolve) => {
        const poll = () => {
          const [entry] = performance.getEntriesByName(name);
          if (entry) resolve(entry.startTime);
          else setTimeout(poll, 5);
        };
        poll();
      }),
    `dashboard:${mark}`,
  );
  const candles = hash === "market"
    ? Number(await page.getAttribute("#chart-summary [data-candles]", "data-candles"))
    : null;
  await context.close();
  if (errors.length) throw new Error(`page errors: ${errors.join("; ")}`);
  return { ms, candles };
}

const result = { overview_ms: [], market_ms: [], market_candles_shown: null };
try {
  await measure("overview", "overview"); // warm-up: the server's first queries, the browser's caches
  for (let i = 0; i < runs; i++) {
    result.overview_ms.push(Math.round((await measure("overview", "overview")).ms));
    const m = await measure("market", "market");
    result.market_ms.push(Math.round(m.ms));
    result.market_candles_shown = m.candles;
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
