-- Wake the bots as soon as signals are written (LISTEN trading_agent_signals), instead of waiting
-- for their next poll. Polling stays as the fallback, so a missed notification only costs latency.
CREATE FUNCTION notify_new_signals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('trading_agent_signals', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER signals_notify AFTER INSERT ON signals
    FOR EACH STATEMENT EXECUTE FUNCTION notify_new_signals();
