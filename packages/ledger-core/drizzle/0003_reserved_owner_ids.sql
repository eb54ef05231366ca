-- Owner ids may no longer be one of the ledger's route words (holds, transfers, entries, events, batch):
-- those paths belong to routes. History is append-only and cannot be renamed here, so a ledger that
-- already has such an owner is not migrated, and says which: move the owner's credits to a new id
-- (with entries of the apps' own operations) and delete nothing.
DO $$
DECLARE
  taken text;
BEGIN
  SELECT string_agg(DISTINCT owner_id, ', ') INTO taken FROM (
    SELECT owner_id FROM ledger_owners
    UNION ALL SELECT owner_id FROM ledger_entries
  ) o
  WHERE owner_id IN ('holds', 'transfers', 'entries', 'events', 'batch');
  IF taken IS NOT NULL THEN
    RAISE EXCEPTION 'owner ids % are route words of the ledger and can no longer be used', taken;
  END IF;
END
$$;
