// What a batch reads: the entries already recorded under its nonces (no lock: an entry never changes
// once written), then, under the owners' locks, each owner's row, its open grants and the limits used.
// Fixed statement texts, prepared once per connection; arrays go over the wire as text[]/bigint[].
import type { FactLoader } from "../engine/command.js";
import type { LimitKey, LoadedFacts, LockedOwner, OwnerStatus } from "../engine/state.js";
import { limitKeyString } from "../engine/state.js";
import {
  entryColumns,
  HOLD_FACT_COLUMNS,
  HOLD_JSON_FIELDS,
  parseJson,
  toActiveHold,
  toOpenGrant,
  toRecordedEntry,
  type RawEntry,
  type RawGrant,
  type RawHold,
  type RawHoldFacts,
  type RecordedEntry,
} from "./reads.js";
import type { Rows, SqlRunner, Statement } from "./sql-client.js";

// With the hold an entry belongs to (its facts as made), so a hold's replay is answered from this read.
// An entry without a hold costs nothing more: its hold_id is null.
const FIND_BY_NONCES = `select ${entryColumns("e.")}, ${HOLD_FACT_COLUMNS("h.")}
  from ledger_entries e left join ledger_holds h on h.id = e.hold_id
  where e.app = $1 and e.nonce = any($2::text[])`;

/** The lookup of findEntriesByNonces as a statement, to send in another round trip. */
export function entriesByNoncesStatement(app: string, nonces: readonly string[]): Statement {
  return { text: FIND_BY_NONCES, params: [app, [...new Set(nonces)]] };
}

export function toRecordedEntries(rows: Rows): Map<string, RecordedEntry> {
  return new Map((rows as unknown as (RawEntry & RawHoldFacts)[]).map((r) => [r.nonce, toRecordedEntry(r)]));
}

/** The entries this app already wrote under any of these nonces. */
export async function findEntriesByNonces(
  db: SqlRunner,
  app: string,
  nonces: readonly string[],
): Promise<Map<string, RecordedEntry>> {
  if (nonces.length === 0) return new Map();
  const [rows = []] = await db.run([{ text: FIND_BY_NONCES, params: [app, [...new Set(nonces)]] }]);
  return new Map((rows as unknown as (RawEntry & RawHoldFacts)[]).map((r) => [r.nonce, toRecordedEntry(r)]));
}

// Creates the missing owner rows and locks every owner's row, in one statement and in sorted order,
// so two batches (in this process or any other) always take their locks in the same order and cannot
// deadlock.
const LOCK_OWNERS = `insert into ledger_owners as b (owner_id, balance, last_sequence, updated_at)
  select o, 0, 0, now() from unnest($1::text[]) as o order by o
  on conflict (owner_id) do update set owner_id = b.owner_id
  returning owner_id, balance::text as balance, held::text as held, last_sequence::text as last_sequence, status,
    (xmax = 0) as created`;

// Sent right after the lock, on the same connection: read after the locks are held, so it sees what
// the previous holder committed. An owner without expiring credits has no row here: the index probe
// finds nothing, and the batch costs no extra round trip.
const OPEN_GRANTS = `select owner_id, sequence::text as sequence, part, app, amount::text as amount,
    remaining::text as remaining, to_char(expires_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as expires_at
  from ledger_grants where owner_id = any($1::text[]) and remaining > 0`;

// Likewise the owners' active holds (served by the partial index ledger_holds_active: an owner with no
// active hold finds nothing).
const ACTIVE_HOLDS = `select json_build_object(${HOLD_JSON_FIELDS}) as hold from ledger_holds h
  where h.owner_id = any($1::text[]) and h.status = 'active'`;

const USED_LIMITS = `select e.owner_id, e.operation, e.limit_period from ledger_entries e
  join unnest($1::text[], $2::text[], $3::text[]) as k(owner_id, operation, limit_period)
    on e.owner_id = k.owner_id and e.operation = k.operation and e.limit_period = k.limit_period
  where e.limit_period is not null`;

function usedLimitsStatement(keys: readonly LimitKey[]): Statement {
  return {
    text: USED_LIMITS,
    params: [keys.map((k) => k.ownerId), keys.map((k) => k.operation), keys.map((k) => k.period)],
  };
}

function toUsedLimits(rows: Rows): Set<string> {
  return new Set(
    (rows as { owner_id: string; operation: string; limit_period: string }[]).map((r) =>
      limitKeyString({ ownerId: r.owner_id, operation: r.operation, period: r.limit_period }),
    ),
  );
}

/** Which of these (owner, operation, period) limits are already used up. */
export async function findUsedLimits(db: SqlRunner, keys: readonly LimitKey[]): Promise<Set<string>> {
  if (keys.length === 0) return new Set();
  const [rows = []] = await db.run([usedLimitsStatement(keys)]);
  return toUsedLimits(rows);
}

/**
 * Locks every owner (creating missing rows) and, sent with it, reads their open grants and which of the
 * limit keys are used up: one round trip, read after the locks are held.
 */
export async function lockOwners(
  tx: SqlRunner,
  ownerIds: readonly string[],
  limitKeys: readonly LimitKey[] = [],
  factKeys: ReadonlyMap<FactLoader, ReadonlySet<string>> = new Map(),
): Promise<{ owners: LockedOwner[]; usedLimits: Set<string>; facts: LoadedFacts }> {
  const sorted = [...new Set(ownerIds)].sort();
  const loaders = [...factKeys].filter(([, keys]) => keys.size > 0);
  const results = await tx.run([
    { text: LOCK_OWNERS, params: [sorted] },
    { text: OPEN_GRANTS, params: [sorted] },
    { text: ACTIVE_HOLDS, params: [sorted] },
    ...(limitKeys.length > 0 ? [usedLimitsStatement(limitKeys)] : []),
    ...loaders.map(([loader, keys]) => loader.statement([...keys])),
  ]);
  const [locked = [], grants = [], holds = []] = results;
  const used = limitKeys.length > 0 ? (results[3] ?? []) : [];
  const first = limitKeys.length > 0 ? 4 : 3;
  const facts = new Map(
    loaders.map(([loader], i) => [loader, loader.parse(results[first + i] ?? [])] as const),
  );
  const owners = new Map<string, LockedOwner>();
  for (const r of locked as {
    owner_id: string;
    balance: string;
    held: string;
    last_sequence: string;
    status: OwnerStatus;
    created: boolean;
  }[]) {
    owners.set(r.owner_id, {
      ownerId: r.owner_id,
      balance: Number(r.balance),
      held: Number(r.held),
      lastSequence: Number(r.last_sequence),
      status: r.status,
      created: r.created,
      grants: [],
      holds: [],
    });
  }
  for (const { hold } of holds as { hold: RawHold | string }[]) {
    const h = toActiveHold(parseJson<RawHold>(hold));
    owners.get(h.ownerId)?.holds.push(h);
  }
  for (const g of grants as unknown as (RawGrant & { owner_id: string })[]) {
    owners.get(g.owner_id)?.grants.push(toOpenGrant(g));
  }
  return { owners: [...owners.values()], usedLimits: toUsedLimits(used), facts };
}

// The sweeper's question: which owners have grants or active holds that are due, whichever app made
// them (an app with no process running must not leave them to wait for the owner's next write). Served
// by the partial indexes ledger_grants_due (expires_at) where remaining > 0, and ledger_holds_due
// (expires_at) where status = 'active'.
const DUE_OWNERS = `select distinct owner_id from (
    (select g.owner_id from ledger_grants g
     where g.remaining > 0 and g.expires_at <= $1::text::timestamptz
       -- A due grant that live holds hold entirely has nothing to expire yet: passed over, so it never
       -- stands in front of the ones that do.
       and g.remaining > coalesce((select sum((w->>2)::bigint) from ledger_holds h, jsonb_array_elements(h.draws) w
                                   where h.owner_id = g.owner_id and h.status = 'active'
                                     and h.expires_at > $1::text::timestamptz
                                     and (w->>0)::bigint = g.sequence and (w->>1)::int = g.part), 0)
     order by g.expires_at limit $2::int)
    union all
    (select owner_id from ledger_holds
     where status = 'active' and expires_at <= $1::text::timestamptz
     order by expires_at limit $2::int)) d`;

/** Owners with at least one grant or active hold due at `now`, at most 2 * `limit` of them. */
export async function findOwnersWithDueExpiries(db: SqlRunner, now: Date, limit: number): Promise<string[]> {
  const [rows = []] = await db.run([{ text: DUE_OWNERS, params: [now.toISOString(), limit] }]);
  return (rows as { owner_id: string }[]).map((r) => r.owner_id);
}
