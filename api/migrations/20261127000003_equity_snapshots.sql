-- The equity curve: the bot records, once a minute, what each quote currency is worth (cash plus
-- open positions at their latest close). Kept for 30 days (older rows are deleted as new ones are
-- written: store::equity::RETENTION_DAYS), so the table stays bounded: 43,200 rows per currency.
-- Expand-only: a new table; an older binary neither reads nor writes it.
CREATE TABLE equity_snapshots (
    currency  text NOT NULL CHECK (currency <> ''),
    taken_at  timestamptz NOT NULL,
    cash      numeric NOT NULL,
    positions numeric NOT NULL,
    equity    numeric NOT NULL,
    PRIMARY KEY (currency, taken_at)
);
CREATE INDEX equity_snapshots_taken_at ON equity_snapshots (taken_at);
