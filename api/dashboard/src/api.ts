// The REST API under /api/v2, with the bearer token kept in sessionStorage (gone when the tab
// closes; never in localStorage, a cookie or a URL).

const TOKEN_KEY = "trading-agent.token";

export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value: string | null): void {
  if (value === null) sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, value);
}

/// A non-2xx answer, with the API's error code and message.
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/// What the API answered, for the pages that show it (bot controls, strategy edits).
export interface Answer<T> {
  status: number;
  body: T;
}

export async function request<T>(
  method: string,
  path: string,
  body?: unknown,
  bearer: string | null = token(),
): Promise<Answer<T>> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`/api/v2${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed: unknown = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = text;
  }
  if (!response.ok) {
    const error = (parsed as { error?: { code?: string; message?: string } } | null)?.error;
    // The stored token was refused (changed on the server): back to sign-in. A candidate token
    // being tried at sign-in is not stored, so its refusal is only reported.
    if (response.status === 401 && bearer !== null && bearer === token()) onUnauthorized?.();
    throw new ApiError(
      response.status,
      error?.code ?? "http_error",
      error?.message ?? `HTTP ${response.status}`,
    );
  }
  return { status: response.status, body: parsed as T };
}

export async function get<T>(path: string): Promise<T> {
  return (await request<T>("GET", path)).body;
}

let onUnauthorized: (() => void) | undefined;

/// Called when the API refuses the stored token (it was changed, or the session is stale).
export function whenUnauthorized(handler: () => void): void {
  onUnauthorized = handler;
}

// ---- shapes of the answers the pages use (see /openapi.json) ----

export type BotState = "running" | "stopped" | "stop_entry";

export interface BotStatus {
  state: BotState;
  updated_at: string;
}

/// What a process runs: its build and the image the operator pinned it to.
export interface BuildInfo {
  version: string;
  commit: string | null;
  image_ref: string | null;
  image_digest: string | null;
}

export interface Component extends BuildInfo {
  role: string;
  instance: string;
  started_at: string;
  last_tick_at: string;
  tick_interval_ms: number;
  stale: boolean;
}

export interface Overview {
  api: BuildInfo & { role: string; instance: string };
  components: Component[];
  bot: BotStatus;
  currency: string;
  balances: { currency: string; amount: string; value: string }[];
  equity: string;
  open_trades: {
    id: number;
    symbol: string;
    strategy_id: number | null;
    strategy: string | null;
    quantity: string;
    entry_price: string;
    opened_at: string;
    current_price: string | null;
    profit: string;
    profit_pct: string;
  }[];
  today_realized: string;
  unrealized: string;
}

export interface Worth {
  currency: string;
  cash: string;
  positions: string;
  equity: string;
}

/// GET /equity: snapshots per quote currency (one a minute, thinned over long ranges).
export interface Equity {
  from: string;
  to: string;
  step_seconds: number;
  currencies: {
    currency: string;
    starting_balance: string;
    points: { time: string; cash: string; positions: string; equity: string }[];
    current: Worth;
  }[];
}

export interface Instrument {
  symbol: string;
  base_asset: string;
  quote_asset: string;
}

export interface ChartCandle {
  time: number;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
}

export interface Chart {
  symbol: string;
  timeframe: string;
  candles: ChartCandle[];
  has_more: boolean;
  indicators: {
    label: string;
    kind: "sma" | "ema" | "rsi";
    period: number;
    pane: "price" | "oscillator";
    points: { time: number; value: number }[];
  }[];
  markers: {
    time: number;
    kind: "signal" | "entry" | "exit";
    side: "buy" | "sell";
    text: string;
    id: number;
    strategy_id: number | null;
    status: string;
    price: number | null;
  }[];
}

export interface Trade {
  id: number;
  symbol: string;
  strategy_id: number | null;
  status: "open" | "closed";
  quantity: string;
  entry_price: string;
  entry_fee: string;
  opened_at: string;
  exit_price: string | null;
  exit_fee: string | null;
  closed_at: string | null;
  profit: string | null;
}

export interface Order {
  id: number;
  signal_id: number;
  side: string;
  quantity: string;
  price: string;
  notional: string;
  fee: string;
  status: string;
  created_at: string;
  reason: string;
}

export interface StrategyStats {
  name: string;
  strategy_id: number | null;
  open_trades: number;
  closed_trades: number;
  winning_trades: number;
  losing_trades: number;
  win_rate_pct: string;
  profit: string;
  max_drawdown: string;
}

export interface Strategy {
  id: number;
  name: string;
  kind: "sma_cross" | "ema_cross" | "rsi";
  params: Record<string, number>;
  symbols: string[];
  timeframe: string;
  enabled: boolean;
  created_at: string;
  updated_at: string;
}

export interface Notification {
  id: number;
  created_at: string;
  level: "info" | "warning" | "error";
  kind: string;
  message: string;
  data: unknown;
  delivery: string | null;
}

export const TIMEFRAMES = ["1m", "5m", "15m", "30m", "1h", "4h", "1d"];
