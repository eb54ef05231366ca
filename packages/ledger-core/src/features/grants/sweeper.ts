// Expiry. From its `expires_at` on, a grant's unspent remainder stops counting at once, for reads and
// writes alike (they subtract it); an EXPIRY entry records it, written by the next write for that owner
// or by this sweeper, whichever comes first (likewise an active hold past its expiry, HOLD_EXPIRY). The
// sweeper finds owners with due grants or holds (of any app: an app with no process running must not
// leave them waiting) and submits one expiry command each to group commit, where it is decided under the
// owner's lock like any write: many processes may sweep at once and each remainder still expires exactly
// once (the lock, the remainder read after it, and the (app, nonce) key of the expiry entry).
import type { Logger } from "pino";
import type { Command } from "../../engine/command.js";
import type { GroupCommitter } from "../../engine/group-commit.js";
import { findOwnersWithDueExpiries } from "../../store/load.js";
import { read } from "../../store/reads.js";
import type { SqlRunner } from "../../store/sql-client.js";

/** Expires whatever is due for one owner; answers how many expiry entries (EXPIRY, HOLD_EXPIRY) it wrote. */
export function expireDue(ownerId: string): Command<number> {
  return {
    kind: "grants.expire",
    nonce: undefined,
    needs: () => ({ owners: [ownerId] }),
    decide: (draft, now) => {
      const expired = draft.expireDue(ownerId, now);
      return { ok: true, answer: () => expired };
    },
    replay: () => null,
  };
}

/** Owners looked up per round of a sweep; a sweep goes on round after round until none is due. */
export const SWEEP_OWNERS_PER_ROUND = 500;

export interface SweepReport {
  owners: number;
  /** Expiry entries written: EXPIRY (grants) and HOLD_EXPIRY (holds). */
  grants: number;
}

/** What the sweeps of one service have done so far (read by /metrics). */
export interface SweepProgress {
  /** Sweeps that finished, and sweeps that failed (retried at the next interval). */
  completed: number;
  failed: number;
  /** Owners swept, and the expiry entries written for them, by the sweeps that finished. */
  owners: number;
  grants: number;
  /** When the last sweep that finished started (its clock), or null before the first. */
  lastCompletedAt: Date | null;
}

export function newSweepProgress(): SweepProgress {
  return { completed: 0, failed: 0, owners: 0, grants: 0, lastCompletedAt: null };
}

export interface SweeperOptions {
  db: SqlRunner;
  app: string;
  committer: GroupCommitter;
  clock: () => Date;
  timeoutMs: number;
  /** Where each sweep's outcome is added up (none: not counted). */
  progress?: SweepProgress | undefined;
}

/** Expires every grant that is due now, whichever app granted it (each under its own app). */
export async function sweepOnce(opts: SweeperOptions): Promise<SweepReport> {
  const { progress } = opts;
  if (!progress) return sweepRounds(opts);
  const startedAt = opts.clock();
  try {
    const report = await sweepRounds(opts);
    progress.completed += 1;
    progress.owners += report.owners;
    progress.grants += report.grants;
    progress.lastCompletedAt = startedAt;
    return report;
  } catch (error) {
    progress.failed += 1;
    throw error;
  }
}

async function sweepRounds(opts: SweeperOptions): Promise<SweepReport> {
  const report: SweepReport = { owners: 0, grants: 0 };
  for (;;) {
    const owners = await read(
      () => findOwnersWithDueExpiries(opts.db, opts.clock(), SWEEP_OWNERS_PER_ROUND),
      opts.timeoutMs,
    );
    if (owners.length === 0) return report;
    const expired = await Promise.all(owners.map((o) => opts.committer.submit(expireDue(o))));
    const grants = expired.reduce((a, b) => a + b, 0);
    report.owners += owners.length;
    report.grants += grants;
    // Another process expired them first: what is left is theirs to finish, or the next round's.
    if (grants === 0) return report;
  }
}

/** Sweeps every `intervalS` seconds until stopped; a failed sweep is logged and tried again next time. */
export function startSweeper(
  opts: SweeperOptions & { intervalS: number; logger: Logger },
): () => Promise<void> {
  let stopped = false;
  let running: Promise<unknown> = Promise.resolve();
  const tick = () => {
    if (stopped) return;
    running = sweepOnce(opts).then(
      (r) => {
        if (r.grants > 0) opts.logger.info({ app: opts.app, ...r }, "expiry sweep");
      },
      (error: unknown) =>
        opts.logger.warn({ app: opts.app, err: error }, "expiry sweep failed; next one will retry"),
    );
  };
  const timer = setInterval(tick, opts.intervalS * 1000);
  timer.unref();
  // The first sweep soon after start, so a process that was down catches up at once.
  const first = setTimeout(tick, Math.min(1_000, opts.intervalS * 1000));
  first.unref();
  return async () => {
    stopped = true;
    clearInterval(timer);
    clearTimeout(first);
    await running;
  };
}
