-- The paper wallet follows quote currencies: one balance per quote asset (an ETHBTC buy spends
-- BTC, not the USDT of the single-row `account`). Seeded from `account`; the bot's
-- STARTING_WALLET adds currencies.
--
-- Expand-only for rollback: a new table. The new binary keeps `account` in step with the balance
-- of the account's currency, which is what the previous binary reads and writes.
CREATE TABLE balances (
    currency         text PRIMARY KEY CHECK (currency <> ''),
    starting_balance numeric NOT NULL CHECK (starting_balance >= 0),
    balance          numeric NOT NULL CHECK (balance >= 0),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
INSERT INTO balances (currency, starting_balance, balance)
    SELECT currency, starting_balance, balance FROM account;
