// Market: candles per symbol and timeframe, indicator lines (SMA/EMA over the price, RSI in a pane
// below), signal and trade markers, zoom and scroll with older candles paged in, live new candles.

import {
  CandlestickSeries,

  ISeriesApi,
  ISeriesMarkersPluginApi,
  LineSeries,
  SeriesMarker,
  Time,
  UTCTimestamp,
  createSeriesMarkers,
} from "lightweight-charts";
import { Chart, Instrument, TIMEFRAMES, get } from "../api";
import { palette, themedChart } from "../charts";
import { card, h, num, replace, table, time } from "../dom";
import { live } from "../live";
import { markReady } from "../ready";

const PAGE = 1000;

export function mountMarket(root: HTMLElement): () => void {
  const params = new URLSearchParams(sessionStorage.getItem("market.view") ?? "");
  const symbolSelect = h("select", { id: "symbol", "aria-label": "symbol" });
  const timeframeSelect = h(
    "select",
    { id: "timeframe", "aria-label": "timeframe" },
    ...TIMEFRAMES.map((tf) => h("option", { value: tf }, tf)),
  );
  timeframeSelect.value = params.get("timeframe") ?? "1m";
  const smaInput = h("input", { id: "sma", size: 6, placeholder: "20,50", value: params.get("sma") ?? "" });
  const emaInput = h("input", { id: "ema", size: 6, placeholder: "12,26", value: params.get("ema") ?? "" });
  const rsiInput = h("input", { id: "rsi", size: 4, placeholder: "14", value: params.get("rsi") ?? "" });
  const summary = h("p", { class: "muted", id: "chart-summary" }, "Loading…");
  const error = h("p", { class: "error", role: "alert" });
  const chartBox = h("div", { class: "chart tall", id: "market-chart" });
  const markerList = h("div", { id: "markers" });
  const form = h(
    "form",
    { class: "toolbar", id: "chart-form" },
    h("label", {}, "Symbol ", symbolSelect),
    h("label", {}, "Timeframe ", timeframeSelect),
    h("label", { title: "comma-separated periods; empty: the strategies' own" }, "SMA ", smaInput),
    h("label", {}, "EMA ", emaInput),
    h("label", {}, "RSI ", rsiInput),
    h("button", { type: "submit" }, "Show"),
  );
  // Zoom and scroll without a mouse wheel or a touch pad (phones, keyboards); dragging and the
  // wheel work as well.
  const button = (id: string, label: string, title: string) =>
    h("button", { type: "button", id, title, "aria-label": title }, label);
  const zoomIn = button("zoom-in", "+", "zoom in");
  const zoomOut = button("zoom-out", "−", "zoom out");
  const older = button("scroll-older", "◀", "older candles");
  const newest = button("scroll-newest", "▶|", "newest candles");
  const navigation = h("div", { class: "toolbar", id: "chart-navigation" }, zoomOut, zoomIn, older, newest);
  root.append(card("Market", form, error, navigation, chartBox, summary), card("Signals and trades", markerList));

  const { chart, dispose } = themedChart(chartBox);
  const p = palette();
  const candles = chart.addSeries(CandlestickSeries, {
    upColor: p.up,
    downColor: p.down,
    borderVisible: false,
    wickUpColor: p.up,
    wickDownColor: p.down,
  });
  const markersApi: ISeriesMarkersPluginApi<Time> = createSeriesMarkers(candles, []);
  let lines: ISeriesApi<"Line">[] = [];
  let data: Chart | null = null;
  let loadingOlder = false;
  let generation = 0;

  const query = (extra: Record<string, string> = {}) => {
    const q = new URLSearchParams({ symbol: symbolSelect.value, timeframe: timeframeSelect.value, ...extra });
    for (const [name, input] of [["sma", smaInput], ["ema", emaInput], ["rsi", rsiInput]] as const) {
      if (input.value.trim() || smaInput.value.trim() || emaInput.value.trim() || rsiInput.value.trim()) {
        q.set(name, input.value.trim());
      }
    }
    return q;
  };

  const render = (fit: boolean) => {
    if (!data) return;
    candles.setData(
      data.candles.map((c) => ({ time: c.time as UTCTimestamp, open: c.open, high: c.high, low: c.low, close: c.close })),
    );
    for (const line of lines) chart.removeSeries(line);
    lines = data.indicators.map((ind, i) => {
      const oscillator = ind.pane === "oscillator";
      const series = chart.addSeries(
        LineSeries,
        {
          color: oscillator ? p.accent : p.lines[i % p.lines.length],
          lineWidth: 1,
          priceLineVisible: false,
          lastValueVisible: true,
          title: ind.label,
          crosshairMarkerVisible: false,
        },
        oscillator ? 1 : 0,
      );
      series.setData(ind.points.map((pt) => ({ time: pt.time as UTCTimestamp, value: pt.value })));
      if (oscillator) {
        series.createPriceLine({ price: 70, color: p.muted, lineWidth: 1, lineStyle: 2, axisLabelVisible: false, title: "" });
        series.createPriceLine({ price: 30, color: p.muted, lineWidth: 1, lineStyle: 2, axisLabelVisible: false, title: "" });
      }
      return series;
    });
    const panes = chart.panes();
    if (panes.length > 1) panes[1].setHeight(Math.max(80, Math.round(chartBox.clientHeight * 0.25)));
    markersApi.setMarkers(data.markers.map(toMarker));
    if (fit) {
      // The newest candles at a readable width; older ones page in when scrolled to.
      const n = data.candles.length;
      if (n <= 300) chart.timeScale().fitContent();
      else chart.timeScale().setVisibleLogicalRange({ from: n - 200, to: n + 5 });
    }
    const last = data.candles[data.candles.length - 1];
    const counts = { signal: 0, entry: 0, exit: 0 };
    for (const m of data.markers) counts[m.kind] += 1;
    replace(
      summary,
      h(
        "span",
        {
          "data-candles": data.candles.length,
          "data-last-close": last ? String(last.close) : "",
          "data-markers": data.markers.length,
        },
        `${data.symbol} ${data.timeframe}: ${data.candles.length} candles`,
        last ? ` · last ${time(new Date(last.time * 1000).toISOString())} close ${num(last.close, 4)}` : "",
        ` · ${counts.signal} signals, ${counts.entry} entries, ${counts.exit} exits`,
        data.has_more ? " · scroll left for older candles" : "",
      ),
    );
    replace(
      markerList,
      data.markers.length === 0
        ? h("p", { class: "muted" }, "No signals or trades in this range.")
        : table(
            ["candle", "kind", "side", "id", "status", "price", "what"],
            [...data.markers]
              .reverse()
              .map((m) => [
                time(new Date(m.time * 1000).toISOString()),
                m.kind,
                m.side,
                m.id,
                m.status,
                m.price === null ? "—" : num(m.price, 4),
                m.text,
              ]),
            { "data-testid": "markers" },
          ),
    );
  };

  const toMarker = (m: Chart["markers"][number]): SeriesMarker<Time> => {
    const buy = m.side === "buy";
    const label = m.kind === "signal" ? (buy ? "buy?" : "sell?") : m.kind === "entry" ? `in #${m.id}` : `out #${m.id}`;
    return {
      time: m.time as UTCTimestamp,
      position: buy ? "belowBar" : "aboveBar",
      color: m.kind === "signal" ? p.muted : buy ? p.up : p.down,
      shape: m.kind === "signal" ? "circle" : buy ? "arrowUp" : "arrowDown",
      text: label,
    };
  };

  const load = async () => {
    const mine = ++generation;
    sessionStorage.setItem("market.view", query().toString());
    try {
      const fresh = await get<Chart>(`/chart?${query({ limit: String(PAGE) })}`);
      if (mine !== generation) return;
      data = fresh;
      render(true);
      replace(error, "");
      markReady("market");
    } catch (e) {
      replace(error, `Cannot load the chart: ${String(e)}`);
    }
  };

  // Older candles when the view reaches the left edge.
  const onRange = (range: { from: number; to: number } | null) => {
    if (range) {
      // The visible window, for tests and the benchmark: bars shown and the first one's index.
      chartBox.setAttribute("data-visible-bars", String(Math.round(range.to - range.from)));
      chartBox.setAttribute("data-visible-from", String(Math.round(range.from)));
    }
    if (!range || !data || !data.has_more || loadingOlder || range.from > 20) return;
    loadingOlder = true;
    const mine = generation;
    const first = data.candles[0];
    const to = new Date(first.time * 1000).toISOString();
    get<Chart>(`/chart?${query({ limit: String(PAGE), to })}`)
      .then((older) => {
        if (mine !== generation || !data) return;
        data = {
          ...data,
          candles: [...older.candles, ...data.candles],
          has_more: older.has_more,
          indicators: data.indicators.map((ind, i) => ({
            ...ind,
            points: [...(older.indicators[i]?.points ?? []), ...ind.points],
          })),
          markers: [...older.markers.filter((m) => m.time < first.time), ...data.markers],
        };
        const visible = chart.timeScale().getVisibleLogicalRange();
        render(false);
        if (visible) {
          const shift = older.candles.length;
          chart.timeScale().setVisibleLogicalRange({ from: visible.from + shift, to: visible.to + shift });
        }
      })
      .catch((e) => replace(error, `Cannot load older candles: ${String(e)}`))
      .finally(() => (loadingOlder = false));
  };
  chart.timeScale().subscribeVisibleLogicalRangeChange(onRange);

  // New candles: fetch the newest few (with the indicators' warm-up done by the server) and append.
  const onCandles = async (event: unknown) => {
    const e = event as { symbol: string };
    if (!data || e.symbol !== data.symbol) return;
    const mine = generation;
    try {
      const tail = await get<Chart>(`/chart?${query({ limit: "50" })}`);
      if (mine !== generation || !data) return;
      const lastTime = data.candles.length ? data.candles[data.candles.length - 1].time : 0;
      const from = tail.candles.findIndex((c) => c.time >= lastTime);
      if (from < 0 && data.candles.length) return void load(); // a gap: reload the window
      const kept = data.candles.filter((c) => c.time < (tail.candles[0]?.time ?? Infinity));
      data = {
        ...data,
        candles: [...kept, ...tail.candles],
        indicators: data.indicators.map((ind, i) => {
          const fresh = tail.indicators[i]?.points ?? [];
          const cut = fresh[0]?.time ?? Infinity;
          return { ...ind, points: [...ind.points.filter((pt) => pt.time < cut), ...fresh] };
        }),
        markers: [
          ...data.markers.filter((m) => m.time < (tail.candles[0]?.time ?? Infinity)),
          ...tail.markers,
        ],
      };
      render(false);
    } catch {
      // the next event or a resync reloads
    }
  };

  const moveView = (change: (r: { from: number; to: number }) => { from: number; to: number }) => {
    const range = chart.timeScale().getVisibleLogicalRange();
    if (range) chart.timeScale().setVisibleLogicalRange(change({ from: range.from, to: range.to }));
  };
  const zoomBy = (factor: number) =>
    moveView((r) => {
      const half = Math.max(5, ((r.to - r.from) * factor) / 2);
      return { from: r.to - 2 * half, to: r.to }; // keep the right edge (the newest candle) in place
    });
  zoomIn.addEventListener("click", () => zoomBy(0.5));
  zoomOut.addEventListener("click", () => zoomBy(2));
  older.addEventListener("click", () =>
    moveView((r) => {
      const shift = Math.max(1, Math.round((r.to - r.from) * 0.75));
      return { from: r.from - shift, to: r.to - shift };
    }),
  );
  newest.addEventListener("click", () => chart.timeScale().scrollToRealTime());

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    void load();
  });
  symbolSelect.addEventListener("change", () => void load());
  timeframeSelect.addEventListener("change", () => void load());

  void get<Instrument[]>("/instruments")
    .then((instruments) => {
      replace(symbolSelect, ...instruments.map((i) => h("option", { value: i.symbol }, i.symbol)));
      const wanted = params.get("symbol");
      if (wanted && instruments.some((i) => i.symbol === wanted)) symbolSelect.value = wanted;
      if (instruments.length === 0) replace(summary, "No instruments yet.");
      else void load();
    })
    .catch((e) => replace(error, `Cannot list instruments: ${String(e)}`));

  const offs = [
    live.on("candles", (e) => void onCandles(e)),
    live.on("trades", () => void onCandles({ symbol: data?.symbol })),
    live.on("resync", () => data && void load()),
  ];
  return () => {
    offs.forEach((off) => off());
    chart.timeScale().unsubscribeVisibleLogicalRangeChange(onRange);
    dispose();
  };
}


