// The dashboard shell: sign-in, navigation between the pages (#/overview, #/market, #/trades,
// #/strategies, #/control), and the live-stream badge.

import "./style.css";
import { ApiError, BotStatus, request, setToken, token, whenUnauthorized } from "./api";
import { h, replace } from "./dom";
import { live, LiveMode } from "./live";
import { mountControl } from "./pages/control";
import { mountMarket } from "./pages/market";
import { mountOverview } from "./pages/overview";
import { mountStrategies } from "./pages/strategies";
import { mountTrades } from "./pages/trades";

/// A page draws into `root` and returns what to undo when it is left.
export type Page = (root: HTMLElement) => () => void;

const PAGES: { path: string; title: string; mount: Page }[] = [
  { path: "overview", title: "Overview", mount: mountOverview },
  { path: "market", title: "Market", mount: mountMarket },
  { path: "trades", title: "Trades", mount: mountTrades },
  { path: "strategies", title: "Strategies", mount: mountStrategies },
  { path: "control", title: "Control", mount: mountControl },
];

const app = document.getElementById("app")!;
let unmount: (() => void) | null = null;

function showSignIn(message = ""): void {
  unmount?.();
  unmount = null;
  live.stop();
  const input = h("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "current-password",
    required: true,
    minlength: 1,
    placeholder: "API token",
  });
  const error = h("p", { class: "error", role: "alert", id: "signin-error" }, message);
  const form = h(
    "form",
    { class: "signin card", id: "signin" },
    h("h1", {}, "trading-agent"),
    h("label", { for: "token" }, "API token"),
    input,
    h("button", { type: "submit" }, "Sign in"),
    error,
    h("p", { class: "muted" }, "The token is kept for this browser tab only (sessionStorage)."),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    void signIn(input.value.trim(), error);
  });
  replace(app, form);
  input.focus();
}

async function signIn(candidate: string, error: HTMLElement): Promise<void> {
  replace(error, "");
  try {
    await request<BotStatus>("GET", "/bot", undefined, candidate);
  } catch (e) {
    const refused = e instanceof ApiError && e.status === 401;
    replace(error, refused ? "The API refused this token." : `Cannot sign in: ${String(e)}`);
    return;
  }
  setToken(candidate);
  if (!location.hash) location.hash = "#/overview";
  showShell();
}

function signOut(): void {
  setToken(null);
  showSignIn();
}

let content: HTMLElement;
let nav: HTMLElement;

function showShell(): void {
  const badge = h("span", { class: "live-badge", id: "live-mode", title: "live updates" }, "…");
  live.onMode = (mode: LiveMode) => {
    badge.className = `live-badge ${mode}`;
    badge.textContent = mode === "live" ? "live" : mode === "polling" ? "polling" : "connecting";
  };
  nav = h(
    "nav",
    { "aria-label": "pages" },
    ...PAGES.map((p) => h("a", { href: `#/${p.path}`, "data-page": p.path }, p.title)),
  );
  content = h("main", { id: "content" });
  replace(
    app,
    h(
      "header",
      {},
      h("span", { class: "brand" }, "trading-agent"),
      nav,
      h("span", { class: "spacer" }),
      badge,
      h("button", { class: "link", id: "signout", onclick: signOut }, "Sign out"),
    ),
    content,
    // The chart library's licence asks for its attribution notice and a link on the page.
    h(
      "footer",
      {},
      "Charts: TradingView Lightweight Charts™, Copyright © TradingView, Inc. ",
      h("a", { href: "https://www.tradingview.com/", rel: "noopener noreferrer", target: "_blank" }, "tradingview.com"),
    ),
  );
  live.start();
  route();
}

function route(): void {
  if (!token() || !content) return;
  const path = location.hash.replace(/^#\//, "") || "overview";
  const page = PAGES.find((p) => p.path === path) ?? PAGES[0];
  for (const a of nav.querySelectorAll("a")) {
    a.classList.toggle("active", a.dataset.page === page.path);
  }
  unmount?.();
  content.replaceChildren();
  document.title = `${page.title} · trading-agent`;
  unmount = page.mount(content);
}

whenUnauthorized(() => showSignIn("The API refused the token; sign in again."));
window.addEventListener("hashchange", route);
if (token()) showShell();
else showSignIn();
