// The ledger apps the console talks to, through @ledger/client only: one client per app and API key.
import {
  createLedgerClient,
  isLedgerApiError,
  LedgerApiError,
  LedgerNetworkError,
  LedgerResponseError,
  type FetchLike,
  type LedgerClient,
  type LedgerPaths,
} from "@ledger/client";
import { APP_NAMES, type AppName, type SessionAuth } from "./session.js";

export type Ledger = LedgerClient<LedgerPaths>;

export interface LedgersOptions {
  urls: Readonly<Record<AppName, string>>;
  /** Default: globalThis.fetch. Tests pass one that calls the apps' `app.request()`. */
  fetch?: FetchLike;
  /** Each attempt's bound; a support page should say "the ledger is not answering" rather than hang. */
  timeoutMs?: number;
}

export interface Ledgers {
  /** A client for `app` with the session's key (none with auth off). */
  client(app: AppName, auth: SessionAuth): Ledger;
  /** A client for `app` with `apiKey` (sign-in, before there is a session). */
  withKey(app: AppName, apiKey: string | undefined): Ledger;
}

export function createLedgers(opts: LedgersOptions): Ledgers {
  const withKey = (app: AppName, apiKey: string | undefined): Ledger =>
    createLedgerClient<LedgerPaths>({
      baseUrl: opts.urls[app],
      ...(apiKey === undefined ? {} : { apiKey }),
      ...(opts.fetch ? { fetch: opts.fetch } : {}),
      timeoutMs: opts.timeoutMs ?? 8_000,
      // Reads are cheap to repeat and writes carry a nonce: a short retry hides a blip, no more.
      retry: { attempts: 2, baseDelayMs: 100, maxDelayMs: 500, retryAfterMaxMs: 2_000 },
    });
  return {
    withKey,
    client: (app, auth) => withKey(app, auth.mode === "required" ? auth.apiKey : undefined),
  };
}

export type SignInResult =
  { ok: true; auth: SessionAuth } | { ok: false; status: 401 | 502; code: string; message: string };

/**
 * Who a key is: tried against each app's GET /api-keys/current; the app that answers 200 is the key's
 * (another app's key, like a bad one, is 401 there). Without a key, the ledger must say its auth is off.
 */
export async function signIn(ledgers: Ledgers, apiKey: string | undefined): Promise<SignInResult> {
  const unreachable: string[] = [];
  for (const app of APP_NAMES) {
    try {
      const current = await ledgers.withKey(app, apiKey).currentKey();
      if (current.auth === "off") return { ok: true, auth: { mode: "off" } };
      if (current.key === null || apiKey === undefined) continue;
      return {
        ok: true,
        auth: {
          mode: "required",
          apiKey,
          app,
          keyId: current.key.id,
          scopes: [...current.key.scopes],
          name: current.key.name ?? null,
        },
      };
    } catch (error) {
      if (isLedgerApiError(error, "UNAUTHENTICATED")) continue;
      if (error instanceof LedgerApiError && error.status === 429) {
        return { ok: false, status: 401, code: error.code, message: `${app} says: ${error.detail}` };
      }
      unreachable.push(`${app} (${describeError(error).code})`);
    }
  }
  if (apiKey === undefined) {
    if (unreachable.length === APP_NAMES.length) {
      return {
        ok: false,
        status: 502,
        code: "LEDGER_UNAVAILABLE",
        message: `No ledger app answered: ${unreachable.join(", ")}.`,
      };
    }
    return {
      ok: false,
      status: 401,
      code: "UNAUTHENTICATED",
      message: "The ledger requires an API key (LEDGER_AUTH=required): paste one to sign in.",
    };
  }
  if (unreachable.length === APP_NAMES.length) {
    return {
      ok: false,
      status: 502,
      code: "LEDGER_UNAVAILABLE",
      message: `No ledger app answered, so the key could not be checked: ${unreachable.join(", ")}.`,
    };
  }
  const tail = unreachable.length > 0 ? ` Not answering: ${unreachable.join(", ")}.` : "";
  return {
    ok: false,
    status: 401,
    code: "UNAUTHENTICATED",
    message: `No ledger app accepts this key: it is unknown, revoked or mistyped.${tail}`,
  };
}

export interface DescribedError {
  /** An HTTP status for the console's own answer: the ledger's 4xx, else 502. */
  status: 400 | 401 | 403 | 404 | 409 | 413 | 422 | 429 | 502;
  code: string;
  message: string;
}

const PASSED_ON = new Set([400, 401, 403, 404, 409, 413, 422, 429]);

/** Any failure of a ledger call as a readable message with its code; never a stack. */
export function describeError(error: unknown): DescribedError {
  if (error instanceof LedgerApiError) {
    const status = PASSED_ON.has(error.status) ? (error.status as DescribedError["status"]) : 502;
    return { status, code: error.code, message: error.detail };
  }
  if (error instanceof LedgerNetworkError) {
    return {
      status: 502,
      code: "LEDGER_UNAVAILABLE",
      message: `The ledger did not answer (${error.route}, ${error.attempts} attempt(s)). A write's outcome is unknown: submitting the same form again applies it at most once.`,
    };
  }
  if (error instanceof LedgerResponseError) {
    return {
      status: 502,
      code: "LEDGER_BAD_RESPONSE",
      message: `The ledger answered something unexpected (HTTP ${error.status}).`,
    };
  }
  return { status: 502, code: "INTERNAL", message: "Something went wrong reading the ledger." };
}
