-- Wake the api's live stream (the dashboard's server-sent events) when something it shows changes:
-- one NOTIFY per statement on trading_agent_changes, coalesced by PostgreSQL within a transaction.
-- The stream still looks every few seconds, so a missed notification only costs latency.
-- Expand-only: an older binary ignores the triggers.
CREATE FUNCTION notify_dashboard_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('trading_agent_changes', TG_TABLE_NAME);
    RETURN NULL;
END
$$;

CREATE TRIGGER events_notify_dashboard AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION notify_dashboard_changes();
CREATE TRIGGER bot_state_notify_dashboard AFTER UPDATE ON bot_state
    FOR EACH STATEMENT EXECUTE FUNCTION notify_dashboard_changes();
CREATE TRIGGER trades_notify_dashboard AFTER INSERT OR UPDATE OR DELETE ON trades
    FOR EACH STATEMENT EXECUTE FUNCTION notify_dashboard_changes();
CREATE TRIGGER strategies_notify_dashboard AFTER INSERT OR UPDATE OR DELETE ON strategies
    FOR EACH STATEMENT EXECUTE FUNCTION notify_dashboard_changes();
CREATE TRIGGER candles_notify_dashboard AFTER INSERT OR UPDATE ON candles
    FOR EACH STATEMENT EXECUTE FUNCTION notify_dashboard_changes();
