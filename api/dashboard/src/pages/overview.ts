// Overview: components with their build, bot state, balances, open trades, today's PnL, equity.

import { AreaSeries, ISeriesApi, UTCTimestamp } from "lightweight-charts";
import { BuildInfo, Component, Equity, Overview, get } from "../api";
import { themedChart, palette } from "../charts";
import { ago, badge, card, h, num, replace, signed, table, time } from "../dom";
import { live } from "../live";
import { markReady } from "../ready";

/// The equity curve's ranges: label, hours (snapshots are kept 30 days).
const EQUITY_RANGES: [string, number][] = [
  ["1 hour", 1],
  ["24 hours", 24],
  ["7 days", 168],
  ["30 days", 720],
];

/// `sha256:0123456789ab…`: the first 12 hex digits, as `docker images` shows them.
export function shortDigest(digest: string): string {
  const [algorithm, hex = ""] = digest.split(":", 2);
  return hex.length > 12 ? `${algorithm}:${hex.slice(0, 12)}…` : digest;
}

export function mountOverview(root: HTMLElement): () => void {
  const summary = h("div", { class: "cards", id: "summary" });
  const components = h("div", { id: "components" });
  const balances = h("div", { id: "balances" });
  const trades = h("div", { id: "open-trades" });
  const equityBox = h("div", { class: "chart small", id: "equity-chart" });
  // The curve of one quote currency over a range; the choice lasts for the session.
  const view = new URLSearchParams(sessionStorage.getItem("equity.view") ?? "");
  const currencySelect = h("select", { id: "equity-currency", "aria-label": "currency" });
  const rangeSelect = h(
    "select",
    { id: "equity-range", "aria-label": "range" },
    ...EQUITY_RANGES.map(([label, hours]) => h("option", { value: String(hours) }, label)),
  );
  rangeSelect.value = view.get("hours") ?? "24";
  const equitySummary = h("p", { class: "muted", id: "equity-summary" });
  const equityTools = h(
    "div",
    { class: "toolbar" },
    h("label", {}, "Currency ", currencySelect),
    h("label", {}, "Range ", rangeSelect),
  );
  const error = h("p", { class: "error", role: "alert" });
  root.append(
    error,
    summary,
    card("Components", components),
    h("div", { class: "two" }, card("Balances", balances), card("Equity", equityTools, equityBox, equitySummary)),
    card("Open trades", trades),
  );
  const { chart, dispose } = themedChart(equityBox, { rightPriceScale: { borderVisible: false } });
  const p = palette();
  const equitySeries: ISeriesApi<"Area"> = chart.addSeries(AreaSeries, {
    lineColor: p.accent,
    topColor: p.accent + "55",
    bottomColor: p.accent + "05",
    lineWidth: 2,
    priceLineVisible: false,
  });
  let last: Overview | null = null;

  // "0.1.0 (3b7f13f)"; the digest shortened as registries show it, the full reference on hover.
  const build = (b: BuildInfo) =>
    h("span", { class: "build" }, b.commit && b.commit !== "unknown" ? `${b.version} (${b.commit.slice(0, 12)})` : b.version);
  const digest = (b: BuildInfo) =>
    b.image_digest
      ? h("code", { class: "digest", title: b.image_ref ?? b.image_digest, "data-digest": b.image_digest }, shortDigest(b.image_digest))
      : h("span", { class: "muted", title: "not told its image (IMAGE_REF): not run by the operator" }, "—");

  const drawComponents = (list: Component[], api: Overview["api"]) => {
    const now = Date.now();
    const rows = [
      [api.role, api.instance, build(api), digest(api), "serving this page", badge("ok", "ok")],
      ...list.map((c) => [
        c.role,
        c.instance,
        build(c),
        digest(c),
        h("span", { title: time(c.last_tick_at) }, ago(c.last_tick_at, now)),
        c.stale ? badge("stale", "bad") : badge("ok", "ok"),
      ]),
    ];
    replace(
      components,
      table(["role", "instance", "build", "image digest", "last tick", "health"], rows, {
        "data-testid": "components",
      }),
    );
  };

  const draw = (o: Overview) => {
    last = o;
    replace(
      summary,
      h(
        "div",
        { class: "stat" },
        h("span", { class: "label" }, "Bot"),
        h("span", { class: `value state-${o.bot.state}`, id: "bot-state" }, o.bot.state.replace("_", "-")),
      ),
      h(
        "div",
        { class: "stat" },
        h("span", { class: "label" }, `Equity (${o.currency})`),
        h("span", { class: "value", id: "equity" }, num(o.equity)),
      ),
      h(
        "div",
        { class: "stat" },
        h("span", { class: "label" }, "Today's PnL (realised)"),
        h("span", { class: "value", id: "today-pnl" }, signed(o.today_realized)),
      ),
      h(
        "div",
        { class: "stat" },
        h("span", { class: "label" }, "Unrealised"),
        h("span", { class: "value" }, signed(o.unrealized)),
      ),
    );
    drawComponents(o.components, o.api);
    replace(
      balances,
      table(
        ["currency", "amount", `value (${o.currency})`],
        o.balances.map((b) => [b.currency, num(b.amount, 8), num(b.value)]),
        { "data-testid": "balances" },
      ),
    );
    replace(
      trades,
      o.open_trades.length === 0
        ? h("p", { class: "muted" }, "No open trades.")
        : table(
            ["#", "symbol", "strategy", "quantity", "entry", "current", "profit", "%", "opened"],
            o.open_trades.map((t) => [
              t.id,
              t.symbol,
              t.strategy ?? "manual",
              num(t.quantity, 8),
              num(t.entry_price),
              num(t.current_price),
              signed(t.profit),
              signed(t.profit_pct),
              time(t.opened_at),
            ]),
            { "data-testid": "open-trades" },
          ),
    );
  };

  const drawEquity = (e: Equity) => {
    const wanted = currencySelect.value || view.get("currency") || e.currencies[0]?.currency || "";
    replace(currencySelect, ...e.currencies.map((c) => h("option", { value: c.currency }, c.currency)));
    currencySelect.value = e.currencies.some((c) => c.currency === wanted) ? wanted : (e.currencies[0]?.currency ?? "");
    const curve = e.currencies.find((c) => c.currency === currencySelect.value);
    const points = new Map<number, number>();
    for (const p of curve?.points ?? []) points.set(Math.floor(new Date(p.time).getTime() / 1000), Number(p.equity));
    // The curve ends now, at the worth computed for this answer.
    if (curve) points.set(Math.floor(Date.now() / 1000), Number(curve.current.equity));
    equitySeries.setData(
      [...points.entries()].sort((a, b) => a[0] - b[0]).map(([t, v]) => ({ time: t as UTCTimestamp, value: v })),
    );
    chart.timeScale().fitContent();
    const first = curve?.points[0];
    replace(
      equitySummary,
      curve
        ? h(
            "span",
            { "data-points": curve.points.length, "data-current": curve.current.equity },
            `${curve.points.length} snapshots${e.step_seconds > 60 ? ` (one per ${Math.round(e.step_seconds / 60)} min)` : ""}; now `,
            num(curve.current.equity),
            ` ${curve.currency}`,
            first ? h("span", {}, " (", signed(Number(curve.current.equity) - Number(first.equity)), " over the range)") : "",
          )
        : "No balances yet.",
    );
  };

  const equityPath = () => {
    const hours = Number(rangeSelect.value) || 24;
    const from = new Date(Date.now() - hours * 3600_000).toISOString();
    return `/equity?${new URLSearchParams({ from })}`;
  };
  const reloadEquity = async () => {
    sessionStorage.setItem("equity.view", new URLSearchParams({ currency: currencySelect.value, hours: rangeSelect.value }).toString());
    try {
      drawEquity(await get<Equity>(equityPath()));
    } catch (e) {
      replace(error, `Cannot load the equity curve: ${String(e)}`);
    }
  };
  currencySelect.addEventListener("change", () => void reloadEquity());
  rangeSelect.addEventListener("change", () => void reloadEquity());

  const load = async () => {
    try {
      const [o, e] = await Promise.all([get<Overview>("/overview"), get<Equity>(equityPath())]);
      draw(o);
      drawEquity(e);
      replace(error, "");
      markReady("overview");
    } catch (e) {
      replace(error, `Cannot load the overview: ${String(e)}`);
    }
  };
  void load();
  const offs = [
    live.on("resync", () => void load()),
    live.on("trades", () => void load()),
    live.on("candles", () => void load()),
    live.on("bot", () => void load()),
    live.on("components", (list) => last && drawComponents(list as Component[], last.api)),
  ];
  return () => {
    offs.forEach((off) => off());
    dispose();
  };
}
