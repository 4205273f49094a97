// Strategies: list, create and edit (the API's own validation messages are shown as they come),
// enable and disable.

import { ApiError, Instrument, Strategy, TIMEFRAMES, get, request } from "../api";
import { badge, card, h, replace, table, time } from "../dom";
import { live } from "../live";

const EXAMPLE_PARAMS: Record<Strategy["kind"], string> = {
  sma_cross: '{"fast": 10, "slow": 30}',
  ema_cross: '{"fast": 12, "slow": 26}',
  rsi: '{"period": 14, "oversold": 30, "overbought": 70}',
};

export function mountStrategies(root: HTMLElement): () => void {
  const list = h("div", { id: "strategies" });
  const listError = h("p", { class: "error", role: "alert" });
  const formBox = h("div", { id: "strategy-form-box" });
  root.append(card("Strategies", listError, list), formBox);
  let symbols: string[] = [];

  const showForm = (existing: Strategy | null) => {
    const name = h("input", { id: "s-name", required: true, value: existing?.name ?? "" });
    const kind = h(
      "select",
      { id: "s-kind" },
      ...(["sma_cross", "ema_cross", "rsi"] as const).map((k) => h("option", { value: k }, k)),
    );
    kind.value = existing?.kind ?? "sma_cross";
    const params = h("textarea", { id: "s-params", rows: 2, spellcheck: "false" });
    params.value = existing ? JSON.stringify(existing.params) : EXAMPLE_PARAMS[kind.value as Strategy["kind"]];
    kind.addEventListener("change", () => {
      if (!existing) params.value = EXAMPLE_PARAMS[kind.value as Strategy["kind"]];
    });
    const syms = h("input", {
      id: "s-symbols",
      value: existing?.symbols.join(",") ?? symbols[0] ?? "",
      placeholder: symbols.join(","),
    });
    const timeframe = h("select", { id: "s-timeframe" }, ...TIMEFRAMES.map((t) => h("option", { value: t }, t)));
    timeframe.value = existing?.timeframe ?? "1m";
    const enabled = h("input", { id: "s-enabled", type: "checkbox" });
    enabled.checked = existing?.enabled ?? true;
    const answer = h("p", { id: "strategy-answer", role: "status" });
    const form = h(
      "form",
      { class: "stack", id: "strategy-form" },
      h("label", {}, "Name", name),
      h("label", {}, "Kind", kind),
      h("label", {}, "Parameters (JSON)", params),
      h("label", {}, "Symbols (comma-separated)", syms),
      h("label", {}, "Timeframe", timeframe),
      h("label", { class: "inline" }, enabled, " enabled"),
      h(
        "div",
        { class: "buttons" },
        h("button", { type: "submit" }, existing ? "Save" : "Create"),
        h("button", { type: "button", class: "secondary", onclick: () => replace(formBox) }, "Cancel"),
      ),
      answer,
    );
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      let parsedParams: unknown;
      try {
        parsedParams = JSON.parse(params.value);
      } catch (err) {
        replace(answer, h("span", { class: "error" }, `params: not valid JSON (${String(err)})`));
        return;
      }
      const body = {
        name: name.value,
        kind: kind.value,
        params: parsedParams,
        symbols: syms.value.split(",").map((s) => s.trim()).filter(Boolean),
        timeframe: timeframe.value,
        enabled: enabled.checked,
      };
      try {
        const r = existing
          ? await request<Strategy>("PUT", `/strategies/${existing.id}`, body)
          : await request<Strategy>("POST", "/strategies", body);
        replace(answer, h("span", { class: "ok-text" }, `${r.status}: saved strategy #${r.body.id} ${r.body.name}`));
        void load();
      } catch (err) {
        replace(answer, h("span", { class: "error" }, describe(err)));
      }
    });
    replace(formBox, card(existing ? `Edit strategy #${existing.id}` : "New strategy", form));
    name.focus();
  };

  const toggle = async (s: Strategy) => {
    try {
      await request<Strategy>("POST", `/strategies/${s.id}/${s.enabled ? "disable" : "enable"}`);
      void load();
    } catch (err) {
      replace(listError, describe(err));
    }
  };

  const load = async () => {
    try {
      const [strategies, instruments] = await Promise.all([get<Strategy[]>("/strategies"), get<Instrument[]>("/instruments")]);
      symbols = instruments.map((i) => i.symbol);
      replace(
        list,
        h("div", { class: "buttons" }, h("button", { id: "new-strategy", onclick: () => showForm(null) }, "New strategy")),
        strategies.length === 0
          ? h("p", { class: "muted" }, "No strategies yet.")
          : table(
              ["#", "name", "kind", "params", "symbols", "timeframe", "state", "updated", ""],
              strategies.map((s) => [
                s.id,
                s.name,
                s.kind,
                h("code", {}, JSON.stringify(s.params)),
                s.symbols.join(", "),
                s.timeframe,
                s.enabled ? badge("enabled", "ok") : badge("disabled", "muted"),
                time(s.updated_at),
                h(
                  "span",
                  { class: "buttons" },
                  h("button", { class: "secondary", onclick: () => showForm(s) }, "Edit"),
                  h("button", { class: "secondary", "data-toggle": s.id, onclick: () => void toggle(s) }, s.enabled ? "Disable" : "Enable"),
                ),
              ]),
              { "data-testid": "strategies" },
            ),
      );
      replace(listError, "");
    } catch (err) {
      replace(listError, `Cannot load strategies: ${describe(err)}`);
    }
  };

  void load();
  const offs = [live.on("strategies", () => void load()), live.on("resync", () => void load())];
  return () => offs.forEach((off) => off());
}

function describe(err: unknown): string {
  return err instanceof ApiError ? `${err.status} ${err.code}: ${err.message}` : String(err);
}
