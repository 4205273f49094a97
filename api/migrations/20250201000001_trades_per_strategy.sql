-- Trades belong to the strategy that opened them (NULL: a manual trade), so two strategies on one
-- symbol no longer block each other: one open trade per symbol and owner.
--
-- Expand-only for rollback: the previous binary never names this index and inserts trades only
-- after its own one-per-symbol check, so it runs unchanged against the relaxed index.
CREATE UNIQUE INDEX trades_one_open_per_owner
    ON trades (symbol, COALESCE(strategy_id, 0)) WHERE status = 'open';
DROP INDEX trades_one_open_per_symbol;
