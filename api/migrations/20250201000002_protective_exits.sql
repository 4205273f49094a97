-- Exits that protect capital (stop-loss, trailing stop, minimal ROI by trade age): set per
-- strategy, copied onto each trade it opens, overridable per trade. A protective exit is a signal
-- aimed at one trade (`trade_id`), and the reason a trade closed is kept on it.
--
-- Expand-only for rollback: new columns with defaults or NULL; the previous binary names the
-- columns it writes and ignores the ones it does not know.
ALTER TABLE strategies ADD COLUMN exits jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE trades
    ADD COLUMN exits       jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN peak_price  numeric,
    ADD COLUMN exit_reason text;
ALTER TABLE signals
    ADD COLUMN trade_id    bigint REFERENCES trades (id),
    ADD COLUMN exit_reason text;
-- At most one pending protective exit per trade.
CREATE UNIQUE INDEX signals_one_pending_exit_per_trade ON signals (trade_id) WHERE status = 'new';
