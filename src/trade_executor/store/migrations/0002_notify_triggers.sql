-- 0002: notifications. A payload is only a hint (it arrives at COMMIT, and is lost while the
-- listener is disconnected): the executor re-reads the approval and the signal from the tables.
-- CREATE OR REPLACE and DROP ... IF EXISTS keep this file safe to re-run by hand.

CREATE OR REPLACE FUNCTION trade_approvals_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(
        'trade_approvals',
        json_build_object('approval_id', NEW.id, 'signal_id', NEW.signal_id)::text
    );
    RETURN NULL;
END
$$;

-- Fires on an approved insert and on any update that sets approved (false -> true included);
-- an update of other columns of an approved row does not notify again.
DROP TRIGGER IF EXISTS trade_approvals_notify ON trade_approvals;
CREATE TRIGGER trade_approvals_notify
    AFTER INSERT OR UPDATE OF approved ON trade_approvals
    FOR EACH ROW WHEN (NEW.approved)
    EXECUTE FUNCTION trade_approvals_notify();

CREATE OR REPLACE FUNCTION executor_control_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(
        'trade_executor_control',
        json_build_object('halted', NEW.halted, 'reason', NEW.reason)::text
    );
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS executor_control_notify ON executor_control;
CREATE TRIGGER executor_control_notify
    AFTER UPDATE ON executor_control
    FOR EACH ROW
    EXECUTE FUNCTION executor_control_notify();
