// What a batch's effects emit, and how a stored event reads. Every entry gets an entry.created; an entry
// that makes or ends a hold also gets that hold's event, right after it. Events are in the batch's entry
// order, so an owner's events are in its sequence order.
import { randomUUID } from "node:crypto";
import { LEDGER_OPERATIONS } from "../../domain/ledger-operations.js";
import type { HoldStatus } from "../../domain/holds.js";
import type { Outbox } from "../../engine/command.js";
import type { RequestOrigin } from "../../engine/request-context.js";
import type { Effects, NewEntry } from "../../engine/state.js";
import { eventWriter, type EventWrite, type StoredEvent } from "../../store/events.js";
import { entryRowOf, toLedgerEntry } from "../../store/reads.js";
import { holdBody } from "../holds/command.js";
import { EVENT_VERSION, type EventType, type LedgerEvent } from "./envelope.js";

/** The events of one batch. `origins[i]`: the request that wrote entries[i]. */
export function eventsOf(effects: Effects, origins: readonly (RequestOrigin | null)[]): EventWrite[] {
  const holds = new Map(effects.holds.map((h) => [h.id, h] as const));
  return effects.entries.flatMap((entry, i) => {
    const origin = origins[i] ?? null;
    const events = [eventOf(entry, "entry.created", entryCreatedData(entry), origin)];
    const hold = entry.holdId === null ? undefined : holds.get(entry.holdId);
    if (hold) {
      const change = holdChange(entry);
      events.push(eventOf(entry, change.type, { hold: holdBody({ ...hold, ...change.state }) }, origin));
    }
    return events;
  });
}

/** The outbox group commit writes through. `committed` wakes the local readers (streams, relay). */
export function createOutbox(committed?: () => void): Outbox<EventWrite> {
  return { writer: eventWriter, rowsOf: eventsOf, ...(committed ? { committed } : {}) };
}

function eventOf(
  entry: NewEntry,
  type: EventType,
  data: Record<string, unknown>,
  origin: RequestOrigin | null,
): EventWrite {
  return {
    id: randomUUID(),
    type,
    version: EVENT_VERSION,
    occurredAt: entry.createdAt,
    app: entry.app,
    ownerId: entry.ownerId,
    sequence: entry.sequence,
    nonce: entry.nonce,
    requestId: origin?.requestId ?? null,
    actor: entry.actor,
    traceId: origin?.traceId ?? null,
    data,
  };
}

/** The entry as the entries route lists it (its id aside: the reader adds it), and the owner after it. */
function entryCreatedData(entry: NewEntry): Record<string, unknown> {
  const { id: _id, ...listed } = toLedgerEntry(entryRowOf(entry));
  return {
    ...listed,
    balance: entry.balanceAfter,
    available: entry.balanceAfter - entry.heldAfter,
    held: entry.heldAfter,
  };
}

/** Which hold event an entry with a hold is, and the hold's state right after it. */
function holdChange(entry: NewEntry): {
  type: EventType;
  state: { status: HoldStatus; capturedAmount: number | null };
} {
  switch (entry.operation) {
    case LEDGER_OPERATIONS.HOLD:
      return { type: "hold.created", state: { status: "active", capturedAmount: null } };
    case LEDGER_OPERATIONS.HOLD_RELEASE:
      return { type: "hold.released", state: { status: "released", capturedAmount: null } };
    case LEDGER_OPERATIONS.HOLD_EXPIRY:
      return { type: "hold.expired", state: { status: "expired", capturedAmount: null } };
    default:
      // A capture: an entry of the hold's operation, debiting what it took.
      return { type: "hold.captured", state: { status: "captured", capturedAmount: -entry.amount } };
  }
}

/** A stored event as every reader gets it: the envelope, with the entry's id put back in its data. */
export function toLedgerEvent(e: StoredEvent): LedgerEvent {
  const data = e.type === "entry.created" ? { id: e.entryId, ...e.data } : { ...e.data, entry_id: e.entryId };
  return {
    id: e.id,
    type: e.type,
    version: e.version,
    occurred_at: e.occurredAt,
    app: e.app,
    owner_id: e.ownerId,
    sequence: e.sequence,
    position: e.position,
    request_id: e.requestId,
    actor: e.actor,
    trace_id: e.traceId,
    data,
  } as LedgerEvent;
}
