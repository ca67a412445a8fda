-- 0008: every payload on trade_executor_control names its kind (store/control_payloads.py).
-- The kill switch's trigger sends {"kind": "kill_switch", "halted", "reason"}; an instance of
-- an older version still running during a switch-over ignores the extra key (for it, anything
-- that is neither a close request nor an execution id is the kill switch, as this is).
-- CREATE OR REPLACE keeps this file safe to re-run; the trigger of 0003 calls this function.

CREATE OR REPLACE FUNCTION executor_control_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(
        'trade_executor_control',
        json_build_object('kind', 'kill_switch', 'halted', NEW.halted, 'reason', NEW.reason)::text
    );
    RETURN NULL;
END
$$;
