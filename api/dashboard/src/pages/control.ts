// Control: start, stop, stop-entry, force-enter, force-exit, each confirmed and answered with what
// the API said; the notification feed, live.

import { ApiError, BotStatus, Instrument, Notification, get, request } from "../api";
import { badge, card, h, replace, time } from "../dom";
import { live } from "../live";

export function mountControl(root: HTMLElement): () => void {
  const state = h("span", { id: "control-bot-state", class: "value" }, "…");
  const confirmBox = h("div", { id: "confirm", class: "confirm", hidden: true });
  const answer = h("pre", { id: "control-answer", class: "answer", role: "status" });
  const symbol = h("select", { id: "control-symbol", "aria-label": "symbol" });
  const stake = h("input", { id: "control-stake", size: 8, placeholder: "stake (default)", inputmode: "decimal" });
  const feed = h("ol", { id: "feed", class: "feed", reversed: true });
  const feedError = h("p", { class: "error", role: "alert" });

  const ask = (label: string, method: string, path: string, body?: () => unknown) => {
    replace(
      confirmBox,
      h("span", {}, `${label}?`),
      h(
        "button",
        {
          id: "confirm-yes",
          onclick: async () => {
            confirmBox.hidden = true;
            try {
              const r = await request<unknown>(method, path, body?.());
              replace(answer, `${label}: ${r.status}\n${JSON.stringify(r.body, null, 2)}`);
              answer.className = "answer ok";
              const s = r.body as Partial<BotStatus>;
              if (s.state) showState(s as BotStatus);
            } catch (err) {
              const text = err instanceof ApiError ? `${err.status} ${err.code}: ${err.message}` : String(err);
              replace(answer, `${label}: ${text}`);
              answer.className = "answer bad";
            }
          },
        },
        "Confirm",
      ),
      h("button", { class: "secondary", onclick: () => (confirmBox.hidden = true) }, "Cancel"),
    );
    confirmBox.hidden = false;
  };

  const button = (id: string, label: string, method: string, path: string, body?: () => unknown) =>
    h("button", { id, onclick: () => ask(label, method, path, body) }, label);

  root.append(
    h(
      "div",
      { class: "two" },
      card(
        "Bot",
        h("p", {}, "State: ", state),
        h(
          "div",
          { class: "buttons" },
          button("bot-start", "Start", "POST", "/bot/start"),
          button("bot-stop-entry", "Stop entries", "POST", "/bot/stop-entry"),
          button("bot-stop", "Stop", "POST", "/bot/stop"),
        ),
        h(
          "div",
          { class: "toolbar" },
          h("label", {}, "Symbol ", symbol),
          stake,
          button("force-enter", "Force enter", "POST", "/bot/force-enter", () =>
            stake.value.trim() ? { symbol: symbol.value, stake: stake.value.trim() } : { symbol: symbol.value },
          ),
          button("force-exit", "Force exit", "POST", "/bot/force-exit", () => ({ symbol: symbol.value })),
        ),
        confirmBox,
        answer,
      ),
      card("Notifications", feedError, feed),
    ),
  );

  const showState = (s: BotStatus) => {
    state.className = `value state-${s.state}`;
    replace(state, s.state.replace("_", "-"), h("span", { class: "muted" }, ` since ${time(s.updated_at)}`));
  };

  const item = (n: Notification) =>
    h(
      "li",
      { class: `level-${n.level}`, "data-id": n.id, "data-kind": n.kind },
      h("span", { class: "when" }, time(n.created_at)),
      badge(n.kind, n.level === "info" ? "ok" : n.level === "warning" ? "warn" : "bad"),
      h("span", { class: "message" }, n.message),
    );

  const shown = new Set<number>();
  const add = (n: Notification) => {
    if (shown.has(n.id)) return;
    shown.add(n.id);
    live.noteNotification(n.id);
    feed.prepend(item(n));
    while (feed.children.length > 200) feed.lastElementChild?.remove();
  };

  const load = async () => {
    try {
      const [bot, instruments, events] = await Promise.all([
        get<BotStatus>("/bot"),
        get<Instrument[]>("/instruments"),
        get<Notification[]>("/notifications?limit=50"),
      ]);
      showState(bot);
      const current = symbol.value;
      replace(symbol, ...instruments.map((i) => h("option", { value: i.symbol }, i.symbol)));
      if (current) symbol.value = current;
      for (const e of events) add(e);
      replace(feedError, "");
    } catch (err) {
      replace(feedError, `Cannot load: ${String(err)}`);
    }
  };

  void load();
  const offs = [
    live.on("notification", (n) => add(n as Notification)),
    live.on("bot", (s) => showState(s as BotStatus)),
    live.on("resync", () => void load()),
  ];
  return () => offs.forEach((off) => off());
}
