// The SQL of group commit: whatever effects a batch's commands decided are written with one statement,
// sent together with COMMIT, whatever the batch's size or mix. The statement takes every row as arrays
// (unnest), so its text never changes and is prepared once per connection; a part with nothing to write
// gets empty arrays and writes nothing.
//
// A batch is, on postgres.js:
//   1. the nonce lookup (no transaction: entries never change once written);
//   2. BEGIN + lock the owners + their open grants, active holds and the limits used, sent together;
//   3. this statement + COMMIT, sent together.
//
// What it costs per plain operation (no expiring credit involved): one heap row (the entry) and three
// index entries (its id, (app, nonce), (owner_id, sequence); a limited operation adds its period). Per
// owner per batch: the lock's and this update's new versions of the owner row, both HOT (no indexed
// column changes). Postings are a view over the entries; grants and allocations get rows only when
// expiring credits are granted, spent or expired, holds only when made or ended.
import { NonceConflictError } from "../domain/errors.js";
import type { Effects } from "../engine/state.js";
import { pgErrorFacts, translateDriverError } from "./errors.js";
import { ENTRY_COLUMNS, toEntryRow, type EntryRow, type RawEntry } from "./reads.js";
import { constraints } from "./schema.js";
import type { Rows, SqlTransaction, Statement } from "./sql-client.js";

// Entries, owners and unused owner rows: what every batch writes.
const WRITE_LEDGER = `with e as (
    insert into ledger_entries (app, operation, owner_id, amount, balance_after, held_after, sequence, nonce,
                                limit_period, created_at, expires_at, hold_id, reverses, counterparty_owner_id, reason, actor)
    select * from unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[],
                         $8::text[], $9::text[], $10::text[]::timestamptz[], $11::text[]::timestamptz[],
                         $12::text[], $13::bigint[], $14::text[], $15::text[], $16::text[])
    returning ${ENTRY_COLUMNS}
  ), o as (
    update ledger_owners as b
    set balance = v.balance, held = v.held, last_sequence = v.last_sequence, status = v.status,
        updated_at = $17::text::timestamptz
    from unnest($18::text[], $19::bigint[], $20::bigint[], $21::bigint[], $22::text[])
      as v(owner_id, balance, held, last_sequence, status)
    where b.owner_id = v.owner_id
  ), d as (
    delete from ledger_owners where owner_id = any($23::text[]) and last_sequence = 0
  )`;

// A batch that touches no expiring credit and no hold (the common one) has a statement of its own,
// planned without those parts.
const WRITE_PLAIN = `${WRITE_LEDGER}
  select * from e`;

// The same, plus grants opened or changed, allocations, and holds made or ended.
const WRITE_BATCH = `${WRITE_LEDGER}, gi as (
    insert into ledger_grants (owner_id, sequence, part, app, amount, remaining, expires_at, created_at, expired_sequence)
    select * from unnest($24::text[], $25::bigint[], $26::int[], $27::text[], $28::bigint[], $29::bigint[],
                         $30::text[]::timestamptz[], $31::text[]::timestamptz[], $32::bigint[])
  ), gu as (
    update ledger_grants as g
    set remaining = v.remaining, expired_sequence = coalesce(v.expired_sequence, g.expired_sequence)
    from unnest($33::text[], $34::bigint[], $35::int[], $36::bigint[], $37::bigint[])
      as v(owner_id, sequence, part, remaining, expired_sequence)
    where g.owner_id = v.owner_id and g.sequence = v.sequence and g.part = v.part
  ), a as (
    insert into ledger_allocations (owner_id, sequence, grant_sequence, grant_part, amount)
    select * from unnest($38::text[], $39::bigint[], $40::bigint[], $41::int[], $42::bigint[])
  ), hi as (
    insert into ledger_holds (id, app, owner_id, operation, amount, status, captured_amount, expires_at, created_at,
                              sequence, ended_at, end_sequence, draws)
    select * from unnest($43::text[], $44::text[], $45::text[], $46::text[], $47::bigint[], $48::text[], $49::bigint[],
                         $50::text[]::timestamptz[], $51::text[]::timestamptz[], $52::bigint[],
                         $53::text[]::timestamptz[], $54::bigint[], $55::text[]::jsonb[])
  ), hu as (
    update ledger_holds as h
    set status = v.status, captured_amount = v.captured_amount, ended_at = v.ended_at, end_sequence = v.end_sequence
    from unnest($56::text[], $57::text[], $58::bigint[], $59::text[]::timestamptz[], $60::bigint[])
      as v(id, status, captured_amount, ended_at, end_sequence)
    where h.id = v.id and h.status = 'active'
  )
  select * from e`;

const iso = (d: Date | null) => (d === null ? null : d.toISOString());
const str = (n: number | null) => (n === null ? null : String(n));

/**
 * Writes a batch's effects and commits: one round trip. The caller holds every owner's lock. Returns
 * the written entry rows in the order of `effects.entries`.
 * @throws NonceConflictError when the (app, nonce) constraint refuses the batch (another process won a
 *   nonce meanwhile): the caller then retries its commands one by one.
 */
export async function writeAndCommit(tx: SqlTransaction, effects: Effects, now: Date): Promise<EntryRow[]> {
  return (await writeReadAndCommit(tx, effects, now, [])).entries;
}

/**
 * writeAndCommit, with reads sent in the same round trip, before the write (so they see what others
 * committed, not this batch's rows): their rows come back in `reads`, in order.
 */
export async function writeReadAndCommit(
  tx: SqlTransaction,
  effects: Effects,
  now: Date,
  reads: readonly Statement[],
): Promise<{ entries: EntryRow[]; reads: Rows[] }> {
  const { entries, owners, unusedOwners, grants, allocations, holds } = effects;
  // Features' own rows go in the same round trip, after the ledger's statement, before COMMIT.
  const extra = [...effects.rows]
    .filter(([, rows]) => rows.length > 0)
    .map(([writer, rows]) => writer.statement(rows));
  if (
    entries.length === 0 &&
    unusedOwners.length === 0 &&
    grants.length === 0 &&
    holds.length === 0 &&
    extra.length === 0
  ) {
    return { entries: [], reads: await tx.runAndCommit(reads) };
  }
  const fresh = grants.filter((g) => g.isNew);
  const changed = grants.filter((g) => !g.isNew);
  const plain = grants.length === 0 && allocations.length === 0 && holds.length === 0;
  const madeHolds = holds.filter((h) => h.isNew);
  const endedHolds = holds.filter((h) => !h.isNew);
  let rows: Rows;
  let readRows: Rows[];
  try {
    const results = await tx.runAndCommit([
      ...reads,
      {
        text: plain ? WRITE_PLAIN : WRITE_BATCH,
        params: [
          entries.map((e) => e.app),
          entries.map((e) => e.operation),
          entries.map((e) => e.ownerId),
          entries.map((e) => String(e.amount)),
          entries.map((e) => String(e.balanceAfter)),
          entries.map((e) => String(e.heldAfter)),
          entries.map((e) => String(e.sequence)),
          entries.map((e) => e.nonce),
          entries.map((e) => e.limitPeriod),
          entries.map((e) => e.createdAt.toISOString()),
          entries.map((e) => iso(e.expiresAt)),
          entries.map((e) => e.holdId),
          entries.map((e) => str(e.reverses)),
          entries.map((e) => e.counterpartyOwnerId),
          entries.map((e) => e.reason),
          entries.map((e) => e.actor),
          now.toISOString(),
          owners.map((o) => o.ownerId),
          owners.map((o) => String(o.balance)),
          owners.map((o) => String(o.held)),
          owners.map((o) => String(o.lastSequence)),
          owners.map((o) => o.status),
          [...unusedOwners],
          ...(plain ? [] : grantParams()),
        ],
      },
      ...extra,
    ]);
    readRows = results.slice(0, reads.length);
    rows = results[reads.length] ?? [];
  } catch (error) {
    const { code, constraint } = pgErrorFacts(error);
    const first = entries[0];
    if (first && code === "23505" && constraint === constraints.appNonce) {
      throw new NonceConflictError(first.nonce);
    }
    throw translateDriverError(error);
  }
  const byKey = new Map((rows as unknown as RawEntry[]).map((r) => [`${r.app} ${r.nonce}`, toEntryRow(r)]));
  const written = entries.map((e) => {
    const row = byKey.get(`${e.app} ${e.nonce}`);
    if (!row) throw new Error(`insert into ledger_entries returned no row for ${e.app} nonce ${e.nonce}`);
    return row;
  });
  return { entries: written, reads: readRows };

  function grantParams(): unknown[] {
    return [
      fresh.map((g) => g.ownerId),
      fresh.map((g) => String(g.sequence)),
      fresh.map((g) => String(g.part)),
      fresh.map((g) => g.app),
      fresh.map((g) => String(g.amount)),
      fresh.map((g) => String(g.remaining)),
      fresh.map((g) => g.expiresAt.toISOString()),
      fresh.map((g) => g.createdAt.toISOString()),
      fresh.map((g) => str(g.expiredSequence)),
      changed.map((g) => g.ownerId),
      changed.map((g) => String(g.sequence)),
      changed.map((g) => String(g.part)),
      changed.map((g) => String(g.remaining)),
      changed.map((g) => str(g.expiredSequence)),
      allocations.map((a) => a.ownerId),
      allocations.map((a) => String(a.sequence)),
      allocations.map((a) => String(a.grantSequence)),
      allocations.map((a) => String(a.grantPart)),
      allocations.map((a) => String(a.amount)),
      madeHolds.map((h) => h.id),
      madeHolds.map((h) => h.app),
      madeHolds.map((h) => h.ownerId),
      madeHolds.map((h) => h.operation),
      madeHolds.map((h) => String(h.amount)),
      madeHolds.map((h) => h.status),
      madeHolds.map((h) => str(h.capturedAmount)),
      madeHolds.map((h) => h.expiresAt.toISOString()),
      madeHolds.map((h) => h.createdAt.toISOString()),
      madeHolds.map((h) => String(h.sequence)),
      madeHolds.map((h) => iso(h.endedAt)),
      madeHolds.map((h) => str(h.endSequence)),
      madeHolds.map((h) => JSON.stringify(h.draws.map((d) => [d.grantSequence, d.grantPart, d.amount]))),
      endedHolds.map((h) => h.id),
      endedHolds.map((h) => h.status),
      endedHolds.map((h) => str(h.capturedAmount)),
      endedHolds.map((h) => iso(h.endedAt)),
      endedHolds.map((h) => str(h.endSequence)),
    ];
  }
}
