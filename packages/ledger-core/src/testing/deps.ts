// What a test hands an app's factory in place of the real thing: a logger that says nothing, and a
// clock the test moves by hand.
import pino from "pino";

export const silentLogger = pino({ level: "silent" });

/** A logger that keeps every line it writes (parsed), for tests of what gets logged. */
export function recordingLogger(): {
  logger: pino.Logger;
  lines: Record<string, unknown>[];
  text: () => string;
} {
  const raw: string[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => void raw.push(line) });
  return {
    logger,
    get lines() {
      return raw.map((l) => JSON.parse(l) as Record<string, unknown>);
    },
    text: () => raw.join(""),
  };
}

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
