// "The page is interactive within 1 s on a local api holding 100,000 candles" (tests/bench/dashboard.sh,
// run by `make bench`). Headless Debian chromium driven by playwright-core; a fresh browser context
// per visit (nothing cached), signed in by the token placed in sessionStorage before the page loads.
//
// Time to interactive, from navigation start:
//   - overview: the page has drawn its data (the app's performance mark `dashboard:overview`, set
//     after the paint that follows drawing components, balances and the equity curve);
//   - market: the chart has drawn the newest candles of the symbol with its indicators and markers
//     (mark `dashboard:market`), and then a control responds: a click on "zoom in", issued as soon
//     as the mark is there, has changed the chart's visible range. The figure is the moment that
//     change is seen, so a main thread still busy after drawing counts against it.
// Ceilings measured in the same run, for the ratios:
//   - fetch: the chart's JSON (the market page's one big request) fetched by a plain HTTP client
//     (Node's fetch, keep-alive), the server's and the network's share of the page's time;
//   - blank: chromium loading a static asset of the api (/favicon.svg) in a fresh context, the
//     browser's own share.
// Prints one JSON object; exits non-zero (with the reason on stderr) if any visit fails.
//
//   BASE_URL, API_TOKEN, SYMBOL (the symbol holding the candles), RUNS (default 5),
//   CHROMIUM (default /usr/bin/chromium)
import { chromium } from "playwright-core";

const base = process.env.BASE_URL;
const token = process.env.API_TOKEN;
const symbol = process.env.SYMBOL;
const runs = Number(process.env.RUNS ?? 5);
if (!base || !token || !symbol) throw new Error("BASE_URL, API_TOKEN and SYMBOL are required");
if (!Number.isInteger(runs) || runs < 1) throw new Error(`RUNS must be a positive integer, got ${process.env.RUNS}`);
const TIMEOUT = 30_000;

// playwright starts chromium with a fresh temporary --user-data-dir of its own and removes it after.
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});

async function freshPage() {
  const context = await browser.newContext({ viewport: { width: 1366, height: 860 } });
  await context.addInitScript(
    ([t, s]) => {
      sessionStorage.setItem("trading-agent.token", t);
      sessionStorage.setItem("market.view", new URLSearchParams({ symbol: s, timeframe: "1m" }).toString());
    },
    [token, symbol],
  );
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  const errors = [];
  page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
  page.on("console", (m) => m.type() === "error" && errors.push(`console error: ${m.text()}`));
  return { context, page, errors };
}

/// Navigation start -> the mark; for the market, -> a zoom click's effect seen after the mark.
async function visit(hash) {
  const { context, page, errors } = await freshPage();
  try {
    await page.goto(`${base}/#/${hash}`);
    const result = await page.evaluate(
      ([hash, timeout]) =>
        new Promise((resolve, reject) => {
          const deadline = performance.now() + timeout;
          const mark = `dashboard:${hash}`;
          const waitFor = (test, then) => {
            const poll = () => {
              const got = test();
              if (got) then(got);
              else if (performance.now() > deadline) reject(new Error(`timed out waiting on ${hash}`));
              else requestAnimationFrame(poll);
            };
            poll();
          };
          waitFor(
            () => performance.getEntriesByName(mark)[0],
            (entry) => {
              if (hash !== "market") return resolve({ drawn: entry.startTime, interactive: entry.startTime });
              const chart = document.querySelector("#market-chart");
              const bars = () => Number(chart.getAttribute("data-visible-bars"));
              const before = bars();
              document.querySelector("#zoom-in").click();
              waitFor(
                () => bars() > 0 && bars() < before,
                () => resolve({ drawn: entry.startTime, interactive: performance.now() }),
              );
            },
          );
        }),
      [hash, TIMEOUT],
    );
    if (hash === "market") {
      result.candles = Number(await page.getAttribute("#chart-summary [data-candles]", "data-candles"));
    }
    if (errors.length) throw new Error(`${hash}: ${errors.join("; ")}`);
    return result;
  } finally {
    await context.close();
  }
}

/// A static asset of the api in a fresh context: navigation start -> load event.
async function blank() {
  const { context, page } = await freshPage();
  try {
    await page.goto(`${base}/favicon.svg`);
    return await page.evaluate(() => performance.getEntriesByType("navigation")[0].loadEventEnd);
  } finally {
    await context.close();
  }
}

/// The chart's JSON as the market page asks for it, by a plain HTTP client.
async function fetchChart() {
  const url = `${base}/api/v2/chart?${new URLSearchParams({ symbol, timeframe: "1m", limit: "1000" })}`;
  const started = performance.now();
  const response = await fetch(url, { headers: { Authorization: `Bearer ${token}` } });
  const body = await response.json();
  const ms = performance.now() - started;
  if (!response.ok) throw new Error(`GET ${url}: ${response.status} ${JSON.stringify(body)}`);
  return { ms, candles: body.candles.length };
}

const round = (x) => Math.round(x * 10) / 10;
const result = {
  runs,
  overview_ms: [],
  market_drawn_ms: [],
  market_ms: [],
  fetch_ms: [],
  blank_ms: [],
  market_candles_shown: null,
  chromium: browser.version(),
};
try {
  // Warm-up: the server's first queries, the browser's own start.
  await visit("overview");
  await visit("market");
  await fetchChart();
  for (let i = 0; i < runs; i++) {
    result.overview_ms.push(round((await visit("overview")).interactive));
    const m = await visit("market");
    result.market_drawn_ms.push(round(m.drawn));
    result.market_ms.push(round(m.interactive));
    result.market_candles_shown = m.candles;
    const f = await fetchChart();
    if (f.candles !== m.candles) throw new Error(`the page drew ${m.candles} candles, the API sent ${f.candles}`);
    result.fetch_ms.push(round(f.ms));
    result.blank_ms.push(round(await blank()));
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
