// Overview: components with their build, bot state, balances, open trades, today's PnL, equity.

import { AreaSeries, ISeriesApi, UTCTimestamp } from "lightweight-charts";
import { Component, Equity, Overview, get } from "../api";
import { themedChart, palette } from "../charts";
import { ago, badge, card, h, num, replace, signed, table, time } from "../dom";
import { live } from "../live";
import { markReady } from "../ready";

export function mountOverview(root: HTMLElement): () => void {
  const summary = h("div", { class: "cards", id: "summary" });
  const components = h("div", { id: "components" });
  const balances = h("div", { id: "balances" });
  const trades = h("div", { id: "open-trades" });
  const equityBox = h("div", { class: "chart small", id: "equity-chart" });
  const error = h("p", { class: "error", role: "alert" });
  root.append(
    error,
    summary,
    card("Components", components),
    h("div", { class: "two" }, card("Balances", balances), card("Equity", equityBox)),
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

  const drawComponents = (list: Component[], api: Overview["api"]) => {
    const now = Date.now();
    const rows = [
      [api.role, api.instance, api.version, "—", "serving this page", badge("ok", "ok")],
      ...list.map((c) => [
        c.role,
        c.instance,
        c.version,
        "—",
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
    const points = new Map<number, number>();
    const start = e.points.length ? Math.floor(new Date(e.points[0].time).getTime() / 1000) - 60 : 0;
    if (e.points.length) points.set(start, Number(e.starting_balance));
    for (const p of e.points) points.set(Math.floor(new Date(p.time).getTime() / 1000), Number(p.equity));
    points.set(Math.floor(Date.now() / 1000), Number(e.current));
    equitySeries.setData(
      [...points.entries()].sort((a, b) => a[0] - b[0]).map(([t, v]) => ({ time: t as UTCTimestamp, value: v })),
    );
    chart.timeScale().fitContent();
  };

  const load = async () => {
    try {
      const [o, e] = await Promise.all([get<Overview>("/overview"), get<Equity>("/equity")]);
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
