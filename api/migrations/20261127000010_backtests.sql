-- Backtests run through the API (issue 18): one row per run. The result (summary, trades and
-- equity curve) is written with the final status in one statement, so a row is either running,
-- completed with all of its result, or failed with its reason: never half-written.
--
-- Expand-only: new tables; no release before this one reads or writes them.
CREATE TABLE backtests (
    id            bigserial PRIMARY KEY,
    status        text NOT NULL DEFAULT 'running'
                  CHECK (status IN ('running', 'completed', 'failed')),
    -- The stored strategy it ran (NULL for an inline definition); no foreign key, so deleting a
    -- strategy keeps its backtests.
    strategy_id   bigint,
    strategy_name text NOT NULL,
    timeframe     text NOT NULL,
    symbols       text[] NOT NULL,
    range_from    timestamptz NOT NULL,
    range_to      timestamptz NOT NULL,
    -- The request as accepted (strategy definition and limits), for reproducing the run.
    request       jsonb NOT NULL,
    summary       jsonb,
    trades        jsonb,
    equity        jsonb,
    error         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    CHECK ((status = 'completed') = (summary IS NOT NULL AND trades IS NOT NULL AND equity IS NOT NULL)),
    CHECK ((status = 'failed') = (error IS NOT NULL))
);
CREATE INDEX backtests_newest ON backtests (id DESC);
