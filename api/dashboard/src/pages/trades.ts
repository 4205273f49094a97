// Trades: open and closed, sortable and filterable by strategy and symbol; per-strategy
// statistics; a trade's detail with its orders.

import { Order, Strategy, StrategyStats, Trade, get } from "../api";
import { card, h, num, replace, signed, table, time } from "../dom";
import { live } from "../live";

type SortKey = "id" | "symbol" | "strategy" | "status" | "opened_at" | "closed_at" | "profit";

export function mountTrades(root: HTMLElement): () => void {
  const statusSelect = h(
    "select",
    { id: "trade-status", "aria-label": "status" },
    h("option", { value: "" }, "open and closed"),
    h("option", { value: "open" }, "open"),
    h("option", { value: "closed" }, "closed"),
  );
  const strategySelect = h("select", { id: "trade-strategy", "aria-label": "strategy" });
  const symbolSelect = h("select", { id: "trade-symbol", "aria-label": "symbol" });
  const list = h("div", { id: "trades" });
  const stats = h("div", { id: "strategy-stats" });
  const detail = h("div", { id: "trade-detail" });
  const error = h("p", { class: "error", role: "alert" });
  root.append(
    card("Per-strategy statistics", stats),
    card(
      "Trades",
      h(
        "div",
        { class: "toolbar" },
        h("label", {}, "Status ", statusSelect),
        h("label", {}, "Strategy ", strategySelect),
        h("label", {}, "Symbol ", symbolSelect),
      ),
      error,
      list,
    ),
    detail,
  );

  let trades: Trade[] = [];
  let names = new Map<number, string>();
  let sort: { key: SortKey; descending: boolean } = { key: "id", descending: true };

  const strategyName = (id: number | null) => (id === null ? "manual" : names.get(id) ?? `#${id}`);

  const value = (t: Trade, key: SortKey): string | number => {
    switch (key) {
      case "strategy":
        return strategyName(t.strategy_id);
      case "profit":
        return t.profit === null ? -Infinity : Number(t.profit);
      case "closed_at":
        return t.closed_at ?? "";
      default:
        return t[key] as string | number;
    }
  };

  const fillSelect = (select: HTMLSelectElement, options: [string, string][]) => {
    const current = select.value;
    replace(select, h("option", { value: "" }, "all"), ...options.map(([v, label]) => h("option", { value: v }, label)));
    if (options.some(([v]) => v === current)) select.value = current;
  };

  const draw = () => {
    fillSelect(
      strategySelect,
      [...new Set(trades.map((t) => (t.strategy_id === null ? "manual" : String(t.strategy_id))))].map((v) => [
        v,
        v === "manual" ? "manual" : strategyName(Number(v)),
      ]),
    );
    fillSelect(symbolSelect, [...new Set(trades.map((t) => t.symbol))].sort().map((s) => [s, s]));
    const shown = trades
      .filter((t) => !strategySelect.value || (t.strategy_id === null ? "manual" : String(t.strategy_id)) === strategySelect.value)
      .filter((t) => !symbolSelect.value || t.symbol === symbolSelect.value)
      .sort((a, b) => {
        const [x, y] = [value(a, sort.key), value(b, sort.key)];
        const order = x < y ? -1 : x > y ? 1 : 0;
        return sort.descending ? -order : order;
      });
    const columns: [SortKey | null, string][] = [
      ["id", "#"],
      ["symbol", "symbol"],
      ["strategy", "strategy"],
      ["status", "status"],
      [null, "quantity"],
      [null, "entry"],
      [null, "exit"],
      ["profit", "profit"],
      ["opened_at", "opened"],
      ["closed_at", "closed"],
    ];
    const head = h(
      "tr",
      {},
      ...columns.map(([key, label]) =>
        h(
          "th",
          { scope: "col", class: key ? "sortable" : "", "aria-sort": key === sort.key ? (sort.descending ? "descending" : "ascending") : null },
          key
            ? h(
                "button",
                {
                  class: "link",
                  "data-sort": key,
                  onclick: () => {
                    sort = { key, descending: sort.key === key ? !sort.descending : false };
                    draw();
                  },
                },
                label + (key === sort.key ? (sort.descending ? " ▾" : " ▴") : ""),
              )
            : label,
        ),
      ),
    );
    const body = h(
      "tbody",
      {},
      ...shown.map((t) =>
        h(
          "tr",
          { class: "clickable", "data-trade": t.id, onclick: () => void showDetail(t.id) },
          ...[
            t.id,
            t.symbol,
            strategyName(t.strategy_id),
            t.status,
            num(t.quantity, 8),
            num(t.entry_price),
            num(t.exit_price),
            t.profit === null ? "—" : signed(t.profit),
            time(t.opened_at),
            time(t.closed_at),
          ].map((c) => h("td", {}, c)),
        ),
      ),
    );
    replace(
      list,
      shown.length === 0
        ? h("p", { class: "muted" }, "No trades match.")
        : h("div", { class: "table-wrap" }, h("table", { "data-testid": "trades" }, h("thead", {}, head), body)),
    );
  };

  const showDetail = async (id: number) => {
    try {
      const d = await get<{ trade: Trade; orders: Order[] }>(`/trades/${id}/detail`);
      const t = d.trade;
      replace(
        detail,
        card(
          `Trade #${t.id} · ${t.symbol} · ${t.status}`,
          h(
            "dl",
            { class: "facts" },
            ...[
              ["strategy", strategyName(t.strategy_id)],
              ["quantity", num(t.quantity, 8)],
              ["entry", `${num(t.entry_price)} (fee ${num(t.entry_fee, 4)}) at ${time(t.opened_at)}`],
              ["exit", t.exit_price ? `${num(t.exit_price)} (fee ${num(t.exit_fee, 4)}) at ${time(t.closed_at)}` : "—"],
              ["profit", t.profit ?? "—"],
            ].flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
          ),
          table(
            ["order", "side", "quantity", "price", "notional", "fee", "status", "reason", "at"],
            d.orders.map((o) => [o.id, o.side, num(o.quantity, 8), num(o.price), num(o.notional), num(o.fee, 4), o.status, o.reason, time(o.created_at)]),
            { "data-testid": "orders" },
          ),
        ),
      );
      detail.scrollIntoView({ block: "nearest" });
    } catch (e) {
      replace(detail, h("p", { class: "error" }, `Cannot load trade ${id}: ${String(e)}`));
    }
  };

  const load = async () => {
    try {
      const status = statusSelect.value ? `&status=${statusSelect.value}` : "";
      const [list, strategies, perStrategy] = await Promise.all([
        get<Trade[]>(`/trades?limit=1000${status}`),
        get<Strategy[]>("/strategies"),
        get<StrategyStats[]>("/stats/strategies"),
      ]);
      trades = list;
      names = new Map(strategies.map((s) => [s.id, s.name]));
      draw();
      replace(
        stats,
        table(
          ["strategy", "open", "closed", "won", "lost", "win rate", "profit", "max drawdown"],
          perStrategy.map((s) => [
            s.name,
            s.open_trades,
            s.closed_trades,
            s.winning_trades,
            s.losing_trades,
            `${num(s.win_rate_pct, 1)} %`,
            signed(s.profit),
            num(s.max_drawdown),
          ]),
          { "data-testid": "strategy-stats" },
        ),
      );
      replace(error, "");
    } catch (e) {
      replace(error, `Cannot load trades: ${String(e)}`);
    }
  };

  statusSelect.addEventListener("change", () => void load());
  strategySelect.addEventListener("change", draw);
  symbolSelect.addEventListener("change", draw);
  void load();
  const offs = [live.on("trades", () => void load()), live.on("resync", () => void load())];
  return () => offs.forEach((off) => off());
}
