-- A candle is final when the feed says so (`final`), or once a grace delay has passed after its
-- close: a feed that writes a candle's last version late no longer gets a signal computed from
-- its partial version.
--
-- Expand-only for rollback: a new column with a default; the previous binary never names it.
ALTER TABLE candles ADD COLUMN final boolean NOT NULL DEFAULT false;
