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
import type { AppName, SessionAuth } from "./session.js";

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
  | { ok: true; auth: SessionAuth }
  | { ok: false; status: 401 | 403 | 429 | 502; code: string; message: string; retryAfterS?: number };

/**
 * Who a key is: asked of the one app the user picked (GET /api-keys/current), never of the other. A key
 * tried at the wrong app is a failed authentication there, counted against the console's address by the
 * ledger's per-address limit, which every console user shares: so the console does not probe. Without a
 * key, the app must say its auth is off.
 */
export async function signIn(
  ledgers: Ledgers,
  app: AppName,
  apiKey: string | undefined,
): Promise<SignInResult> {
  try {
    const current = await ledgers.withKey(app, apiKey).currentKey();
    if (current.auth === "off") return { ok: true, auth: { mode: "off" } };
    if (current.key !== null && apiKey !== undefined) {
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
    }
  } catch (error) {
    if (isLedgerApiError(error, "FORBIDDEN")) {
      // The app knows the key (a stranger's is 401), but the key may not read: the console shows nothing.
      return {
        ok: false,
        status: 403,
        code: "FORBIDDEN",
        message: `This key belongs to ${app} but lacks the read scope: the console needs a key with read.`,
      };
    }
    if (error instanceof LedgerApiError && error.status === 429) {
      return {
        ok: false,
        status: 429,
        code: "RATE_LIMITED",
        message: `${app} says: ${error.detail}`,
        ...(error.retryAfterS === undefined ? {} : { retryAfterS: error.retryAfterS }),
      };
    }
    if (!isLedgerApiError(error, "UNAUTHENTICATED")) {
      const d = describeError(error);
      return {
        ok: false,
        status: 502,
        code: "LEDGER_UNAVAILABLE",
        message: `${app} did not answer (${d.code}), so the key could not be checked.`,
      };
    }
  }
  return {
    ok: false,
    status: 401,
    code: "UNAUTHENTICATED",
    message:
      apiKey === undefined
        ? `${app} requires an API key (LEDGER_AUTH=required): paste one to sign in.`
        : `${app} does not accept this key: it is unknown, revoked, mistyped, or another app's (pick the key's app).`,
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
