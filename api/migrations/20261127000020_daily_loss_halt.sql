-- The bot's daily-loss halt, as the bot last judged it (GET /api/v2/bot `daily_loss_halt`): set when
-- the day's realised loss in a currency reaches DAILY_LOSS_LIMIT, cleared when it no longer does
-- (a new UTC day). Written only on a change, so the dashboard trigger fires once per halt.
ALTER TABLE bot_state
    ADD COLUMN halt_message text,
    ADD COLUMN halted_at    timestamptz;
