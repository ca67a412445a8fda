-- Databases migrated before 0001 looked for the original's index have two indexes on
-- trades (signal_id): the original's idx_trades_signal_id and our trades_signal_id_idx. Ours goes;
-- the original's serves our look-ups just as well. Where ours is the only one, it stays.
DO $$
BEGIN
    IF to_regclass('trades_signal_id_idx') IS NOT NULL AND EXISTS (
        SELECT 1
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
        WHERE i.indrelid = 'trades'::regclass AND i.indnatts = 1 AND a.attname = 'signal_id'
          AND i.indpred IS NULL AND i.indexprs IS NULL AND c.relname <> 'trades_signal_id_idx'
    ) THEN
        DROP INDEX trades_signal_id_idx;
    END IF;
END
$$;
