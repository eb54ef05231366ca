// The holds feature's reads: one hold by its id, an owner's holds a page at a time, the hold's status
// under the batch's locks (a FactLoader), and what a replayed capture or release needs to give the
// balance its original answer gave. Fixed statement texts with positional parameters (prepared once).
import type { FactLoader } from "../../engine/command.js";
import type { HoldStatus } from "../../domain/holds.js";
import { UTC_MS } from "../../store/reads.js";
import type { Rows, SqlRunner } from "../../store/sql-client.js";

/** A hold as stored, whatever its status. */
export interface StoredHold {
  id: string;
  app: string;
  ownerId: string;
  operation: string;
  amount: number;
  /** As stored: an active hold past its expiry is still "active" here until the ledger records it. */
  status: HoldStatus;
  capturedAmount: number | null;
  expiresAt: Date;
  createdAt: Date;
  /** Its HOLD entry's sequence: the list's order and cursor. */
  sequence: number;
}

const HOLD_COLUMNS = `h.id, h.app, h.owner_id, h.operation, h.amount::text as amount, h.status,
  h.captured_amount::text as captured_amount, ${UTC_MS("h.expires_at")} as expires_at,
  ${UTC_MS("h.created_at")} as created_at, h.sequence::text as sequence`;

interface RawStoredHold {
  id: string;
  app: string;
  owner_id: string;
  operation: string;
  amount: string;
  status: HoldStatus;
  captured_amount: string | null;
  expires_at: string;
  created_at: string;
  sequence: string;
}

function toStoredHold(r: RawStoredHold): StoredHold {
  return {
    id: r.id,
    app: r.app,
    ownerId: r.owner_id,
    operation: r.operation,
    amount: Number(r.amount),
    status: r.status,
    capturedAmount: r.captured_amount === null ? null : Number(r.captured_amount),
    expiresAt: new Date(r.expires_at),
    createdAt: new Date(r.created_at),
    sequence: Number(r.sequence),
  };
}

const HOLD_BY_ID = `select ${HOLD_COLUMNS} from ledger_holds h where h.id = $1`;

/** The hold with this id, of any app (the caller decides what another app's hold is to it). */
export async function findHold(db: SqlRunner, holdId: string): Promise<StoredHold | undefined> {
  const [rows = []] = await db.run([{ text: HOLD_BY_ID, params: [holdId] }]);
  const row = rows[0] as RawStoredHold | undefined;
  return row ? toStoredHold(row) : undefined;
}

/** What the list route filters on: a status as of `now` (an active hold past its expiry is "expired"). */
export type HoldStatusFilter = HoldStatus | undefined;

// Newest first by the HOLD entry's sequence, served by ledger_holds_owner (owner_id, app, sequence). The
// status is the one a reader sees at $5: an active hold past its expiry reads expired, swept or not.
const OWNER_HOLDS = `select ${HOLD_COLUMNS} from ledger_holds h
  where h.owner_id = $1 and h.app = $2 and ($3::bigint is null or h.sequence < $3::bigint)
    and ($4::text is null
      or ($4::text = 'active' and h.status = 'active' and h.expires_at > $5::text::timestamptz)
      or ($4::text = 'expired' and (h.status = 'expired'
          or (h.status = 'active' and h.expires_at <= $5::text::timestamptz)))
      or ($4::text in ('captured', 'released') and h.status = $4::text))
  order by h.sequence desc
  limit $6::int`;

/** An app's holds of an owner, newest first, older than `beforeSequence` when given. */
export async function listOwnerHolds(
  db: SqlRunner,
  query: {
    ownerId: string;
    app: string;
    beforeSequence: number | undefined;
    status: HoldStatusFilter;
    now: Date;
    limit: number;
  },
): Promise<StoredHold[]> {
  const [rows = []] = await db.run([
    {
      text: OWNER_HOLDS,
      params: [
        query.ownerId,
        query.app,
        query.beforeSequence === undefined ? null : String(query.beforeSequence),
        query.status ?? null,
        query.now.toISOString(),
        query.limit,
      ],
    },
  ]);
  return (rows as unknown as RawStoredHold[]).map(toStoredHold);
}

/**
 * A hold's stored status, read under the batch's locks (in the lock round trip): a hold that ended
 * between the route's read and the lock (captured, released or expired by another request) is not among
 * the owner's active holds the batch loads, and its status comes from here.
 */
export const holdStatusLoader: FactLoader<HoldStatus> = {
  name: "holds.status",
  statement: (keys) => ({
    text: "select id, status from ledger_holds where id = any($1::text[])",
    params: [[...keys]],
  }),
  parse: (rows: Rows) =>
    new Map((rows as { id: string; status: HoldStatus }[]).map((r) => [r.id, r.status] as const)),
};

// The EXPIRY entries a capture or a release wrote right after its own entry (what its hold held of
// grants past their expiry expires at once): the owner's entries that follow it without a gap, written
// in the same instant by the ledger. Nothing else writes an EXPIRY first at that instant: every grant
// due then has expired by the end of the capture or release, but those still under another live hold,
// whose own release writes its HOLD_RELEASE first.
const TRAILING_EXPIRY = `select e.balance_after::text as balance_after, e.held_after::text as held_after
  from ledger_entries e
  where e.owner_id = $1 and e.sequence > $2::bigint
    and e.sequence < coalesce((
      select min(x.sequence) from ledger_entries x
      where x.owner_id = $1 and x.sequence > $2::bigint
        and (x.operation <> 'EXPIRY' or x.created_at <> $3::text::timestamptz
          or x.nonce <> 'ledger ' || x.sequence || ' ' || x.owner_id)), 9223372036854775807)
  order by e.sequence desc
  limit 1`;

/**
 * The balance and held credits right after the EXPIRY entries that a capture or release (the entry at
 * `sequence`) wrote after its own, or undefined when it wrote none: what its original answer reported.
 */
export async function afterTrailingExpiries(
  db: SqlRunner,
  entry: { ownerId: string; sequence: number; createdAt: Date },
): Promise<{ balanceAfter: bigint; heldAfter: bigint } | undefined> {
  const [rows = []] = await db.run([
    {
      text: TRAILING_EXPIRY,
      params: [entry.ownerId, String(entry.sequence), entry.createdAt.toISOString()],
    },
  ]);
  const row = rows[0] as { balance_after: string; held_after: string } | undefined;
  return row ? { balanceAfter: BigInt(row.balance_after), heldAfter: BigInt(row.held_after) } : undefined;
}
