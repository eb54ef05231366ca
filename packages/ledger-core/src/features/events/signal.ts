// In-process news of committed events: group commit wakes the database's signal after every batch that
// wrote entries, so this process's readers (the streams' feed, the relay) look at once instead of at their
// next poll. Other processes' commits are found by polling; the signal only shortens the wait.
import type { LedgerDb } from "../../store/client.js";
import { driverClientOf } from "../../store/sql-client.js";

export interface EventSignal {
  /** Events were committed in this process. */
  wake(): void;
  /** Resolves at the next wake, or after timeoutMs, whichever is first. */
  next(timeoutMs: number): Promise<void>;
}

const signals = new WeakMap<object, EventSignal>();

/** The one signal of a database (of its client) in this process. */
export function eventSignalFor(db: LedgerDb): EventSignal {
  const client = driverClientOf(db);
  const key: object = typeof client === "object" && client !== null ? client : db;
  let signal = signals.get(key);
  if (!signal) {
    signal = createEventSignal();
    signals.set(key, signal);
  }
  return signal;
}

export function createEventSignal(): EventSignal {
  let waiters: (() => void)[] = [];
  return {
    wake() {
      const woken = waiters;
      waiters = [];
      for (const w of woken) w();
    },
    next(timeoutMs) {
      return new Promise<void>((resolve) => {
        const timer = setTimeout(done, timeoutMs);
        timer.unref?.();
        function done() {
          clearTimeout(timer);
          waiters = waiters.filter((w) => w !== done);
          resolve();
        }
        waiters.push(done);
      });
    },
  };
}
