-- Validators write usage counters behind (validation_count, last_validated_at) for every license
-- validated in the last few seconds: up to tens of thousands of rows per batch. Neither column is
-- indexed, so with free room on the page PostgreSQL updates them in place (HOT) instead of adding
-- an entry to each of the table's five indexes per row. Leave that room.
ALTER TABLE licenses SET (fillfactor = 80);
