// What a test hands an app's factory in place of the real thing: a logger that says nothing, and a
// clock the test moves by hand.
import pino from "pino";

export const silentLogger = pino({ level: "silent" });

/** A clock the test moves by hand, for the daily limit. */
export function manualClock(start: string) {
  let now = new Date(start);
  return {
    now: (): Date => new Date(now),
    set: (iso: string): void => {
      now = new Date(iso);
    },
  };
}
