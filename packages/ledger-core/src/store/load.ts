// What a batch reads: the entries already recorded under its nonces (no lock: an entry never changes
// once written), then, under the owners' locks, each owner's row, its open grants and the limits used.
// Fixed statement texts, prepared once per connection; arrays go over the wire as text[]/bigint[].
import type { FactLoader } from "../engine/command.js";
import type { LimitKey, LoadedFacts, LockedOwner, OwnerStatus } from "../engine/state.js";
import { limitKeyString } from "../engine/state.js";
import {
  ENTRY_COLUMNS,
  toEntryRow,
  toOpenGrant,
  type EntryRow,
  type RawEntry,
  type RawGrant,
} from "./reads.js";
import type { Rows, SqlRunner, Statement } from "./sql-client.js";

const FIND_BY_NONCES = `select ${ENTRY_COLUMNS} from ledger_entries where app = $1 and nonce = any($2::text[])`;

/** The entries this app already wrote under any of these nonces. */
export async function findEntriesByNonces(
  db: SqlRunner,
  app: string,
  nonces: readonly string[],
): Promise<Map<string, EntryRow>> {
  if (nonces.length === 0) return new Map();
  const [rows = []] = await db.run([{ text: FIND_BY_NONCES, params: [app, [...new Set(nonces)]] }]);
  return new Map((rows as unknown as RawEntry[]).map((r) => [r.nonce, toEntryRow(r)]));
}

// Creates the missing owner rows and locks every owner's row, in one statement and in sorted order,
// so two batches (in this process or any other) always take their locks in the same order and cannot
// deadlock.
const LOCK_OWNERS = `insert into ledger_owners as b (owner_id, balance, last_sequence, updated_at)
  select o, 0, 0, now() from unnest($1::text[]) as o order by o
  on conflict (owner_id) do update set owner_id = b.owner_id
  returning owner_id, balance::text as balance, last_sequence::text as last_sequence, status, (xmax = 0) as created`;

// Sent right after the lock, on the same connection: read after the locks are held, so it sees what
// the previous holder committed. An owner without expiring credits has no row here: the index probe
// finds nothing, and the batch costs no extra round trip.
const OPEN_GRANTS = `select owner_id, sequence::text as sequence, app, amount::text as amount,
    remaining::text as remaining, to_char(expires_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as expires_at
  from ledger_grants where owner_id = any($1::text[]) and remaining > 0`;

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
    ...(limitKeys.length > 0 ? [usedLimitsStatement(limitKeys)] : []),
    ...loaders.map(([loader, keys]) => loader.statement([...keys])),
  ]);
  const [locked = [], grants = []] = results;
  const used = limitKeys.length > 0 ? (results[2] ?? []) : [];
  const first = limitKeys.length > 0 ? 3 : 2;
  const facts = new Map(
    loaders.map(([loader], i) => [loader, loader.parse(results[first + i] ?? [])] as const),
  );
  const owners = new Map<string, LockedOwner>();
  for (const r of locked as {
    owner_id: string;
    balance: string;
    last_sequence: string;
    status: OwnerStatus;
    created: boolean;
  }[]) {
    owners.set(r.owner_id, {
      ownerId: r.owner_id,
      balance: Number(r.balance),
      lastSequence: Number(r.last_sequence),
      status: r.status,
      created: r.created,
      grants: [],
    });
  }
  for (const g of grants as unknown as (RawGrant & { owner_id: string })[]) {
    owners.get(g.owner_id)?.grants.push(toOpenGrant(g));
  }
  return { owners: [...owners.values()], usedLimits: toUsedLimits(used), facts };
}

// The sweeper's question: which owners have grants that are due, whichever app granted them (an app
// with no process running must not leave its grants to wait for the owner's next write). Served by the
// partial index ledger_grants_due (expires_at) where remaining > 0.
const DUE_OWNERS = `select distinct owner_id from (
    select owner_id from ledger_grants
    where remaining > 0 and expires_at <= $1::text::timestamptz
    order by expires_at limit $2::int) d`;

/** Owners with at least one grant due at `now`, at most `limit` of them. */
export async function findOwnersWithDueGrants(db: SqlRunner, now: Date, limit: number): Promise<string[]> {
  const [rows = []] = await db.run([{ text: DUE_OWNERS, params: [now.toISOString(), limit] }]);
  return (rows as { owner_id: string }[]).map((r) => r.owner_id);
}
