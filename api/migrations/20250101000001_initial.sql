-- The whole trading-agent schema. Money and prices are NUMERIC (exact decimals, rust_decimal in the
-- code); timestamps are timestamptz in UTC. Constraints repeat the application's validation so that
-- no code path, present or future, can store an inconsistent row.

CREATE TABLE instruments (
    symbol      text PRIMARY KEY CHECK (symbol ~ '^[A-Z0-9][A-Z0-9._-]{0,31}$'),
    base_asset  text NOT NULL CHECK (base_asset <> ''),
    quote_asset text NOT NULL CHECK (quote_asset <> ''),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE candles (
    symbol    text NOT NULL REFERENCES instruments (symbol),
    timeframe text NOT NULL CHECK (timeframe IN ('1m', '5m', '15m', '30m', '1h', '4h', '1d')),
    open_time timestamptz NOT NULL,
    open      numeric NOT NULL,
    high      numeric NOT NULL,
    low       numeric NOT NULL,
    close     numeric NOT NULL,
    volume    numeric NOT NULL,
    PRIMARY KEY (symbol, timeframe, open_time),
    CHECK (low >= 0 AND volume >= 0),
    CHECK (low <= open AND low <= close AND high >= open AND high >= close)
);
-- The latest price of a symbol whatever the timeframe (valuing open trades, pricing manual orders).
CREATE INDEX candles_symbol_latest ON candles (symbol, open_time DESC);

CREATE TABLE strategies (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    kind       text NOT NULL CHECK (kind IN ('sma_cross', 'ema_cross', 'rsi')),
    params     jsonb NOT NULL,
    symbols    text[] NOT NULL CHECK (cardinality(symbols) > 0),
    timeframe  text NOT NULL CHECK (timeframe IN ('1m', '5m', '15m', '30m', '1h', '4h', '1d')),
    enabled    boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- A signal comes from a strategy (unique per strategy, symbol, candle and action, so re-runs write
-- nothing new) or from a manual request (force-enter/force-exit, unique per idempotency key).
CREATE TABLE signals (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    strategy_id      bigint REFERENCES strategies (id),
    symbol           text NOT NULL REFERENCES instruments (symbol),
    timeframe        text,
    candle_open_time timestamptz,
    action           text NOT NULL CHECK (action IN ('buy', 'sell')),
    price            numeric CHECK (price > 0),
    stake            numeric CHECK (stake > 0),
    reason           text NOT NULL,
    idempotency_key  text UNIQUE,
    status           text NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'executed', 'rejected')),
    status_reason    text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    processed_at     timestamptz,
    CHECK ((strategy_id IS NULL) = (idempotency_key IS NOT NULL)),
    CHECK (strategy_id IS NULL OR (timeframe IS NOT NULL AND candle_open_time IS NOT NULL AND price IS NOT NULL))
);
CREATE UNIQUE INDEX signals_once_per_candle
    ON signals (strategy_id, symbol, candle_open_time, action) WHERE strategy_id IS NOT NULL;
CREATE INDEX signals_new ON signals (id) WHERE status = 'new';

CREATE TABLE trades (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    symbol         text NOT NULL REFERENCES instruments (symbol),
    strategy_id    bigint REFERENCES strategies (id),
    status         text NOT NULL CHECK (status IN ('open', 'closed')),
    quantity       numeric NOT NULL CHECK (quantity > 0),
    entry_price    numeric NOT NULL CHECK (entry_price > 0),
    entry_fee      numeric NOT NULL CHECK (entry_fee >= 0),
    opened_at      timestamptz NOT NULL,
    exit_price     numeric,
    exit_fee       numeric,
    closed_at      timestamptz,
    profit         numeric,
    CHECK ((status = 'open') = (closed_at IS NULL)),
    CHECK (status = 'open' OR (exit_price IS NOT NULL AND exit_fee IS NOT NULL AND profit IS NOT NULL))
);
-- One open trade per symbol, whatever the number of bot replicas.
CREATE UNIQUE INDEX trades_one_open_per_symbol ON trades (symbol) WHERE status = 'open';
CREATE INDEX trades_closed_at ON trades (closed_at) WHERE status = 'closed';

CREATE TABLE orders (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Derived from the signal ("signal-<id>"): a signal can never produce two orders.
    idempotency_key text NOT NULL UNIQUE,
    signal_id       bigint NOT NULL REFERENCES signals (id),
    trade_id        bigint NOT NULL REFERENCES trades (id),
    symbol          text NOT NULL REFERENCES instruments (symbol),
    side            text NOT NULL CHECK (side IN ('buy', 'sell')),
    quantity        numeric NOT NULL CHECK (quantity > 0),
    price           numeric NOT NULL CHECK (price > 0),
    notional        numeric NOT NULL CHECK (notional > 0),
    fee             numeric NOT NULL CHECK (fee >= 0),
    status          text NOT NULL DEFAULT 'filled' CHECK (status IN ('filled')),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_symbol ON orders (symbol, id);

-- The paper account: one row, cash in the quote currency.
CREATE TABLE account (
    id               smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    currency         text NOT NULL,
    starting_balance numeric NOT NULL CHECK (starting_balance >= 0),
    balance          numeric NOT NULL CHECK (balance >= 0),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
INSERT INTO account (currency, starting_balance, balance) VALUES ('USDT', 10000, 10000);

CREATE TABLE bot_state (
    id         smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    state      text NOT NULL CHECK (state IN ('running', 'stopped', 'stop_entry')),
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO bot_state (state) VALUES ('running');

-- Everything worth telling a user; the notification feed reads it. `dedup_key` keeps a repeated
-- condition (the same data gap seen on every tick) to one event.
CREATE TABLE events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    level      text NOT NULL CHECK (level IN ('info', 'warning', 'error')),
    kind       text NOT NULL,
    message    text NOT NULL,
    data       jsonb NOT NULL DEFAULT '{}'::jsonb,
    dedup_key  text UNIQUE
);

-- Transactional outbox for webhook delivery: written in the same transaction as the event.
CREATE TABLE notification_outbox (
    event_id        bigint PRIMARY KEY REFERENCES events (id),
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed', 'skipped')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    delivered_at    timestamptz
);
CREATE INDEX notification_outbox_due ON notification_outbox (next_attempt_at) WHERE status = 'pending';

CREATE TABLE component_heartbeats (
    role             text NOT NULL,
    instance         text NOT NULL,
    version          text NOT NULL,
    started_at       timestamptz NOT NULL,
    last_tick_at     timestamptz NOT NULL,
    tick_interval_ms bigint NOT NULL,
    stall_after_ms   bigint NOT NULL,
    PRIMARY KEY (role, instance)
);
