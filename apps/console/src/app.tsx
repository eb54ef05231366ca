/** @jsxRuntime automatic */
/** @jsxImportSource hono/jsx */
// The support console: server-rendered pages over the ledger's HTTP API (@ledger/client, never SQL).
// Real forms and links, so it works with the keyboard and without a framework in the browser; one small
// script of ours draws the chart with uPlot. Every asset is served from here.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import type { FetchLike } from "@ledger/client";
import { Hono, type Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { secureHeaders } from "hono/secure-headers";
import { RateLimiterMemory, RateLimiterRes } from "rate-limiter-flexible";
import { z } from "zod";
import { statementHeader, statementRow } from "./csv.js";
import { type Entry, OPERATION, OWNER_ID, parseInstant, signed } from "./format.js";
import { createLedgers, describeError, signIn, type Ledger, type Ledgers } from "./ledgers.js";
import {
  APP_NAMES,
  createSealer,
  mayAct,
  mayRelease,
  newSession,
  SESSION_COOKIE,
  SESSION_MAX_AGE_S,
  type AppName,
  type Session,
  type SessionAuth,
} from "./session.js";
import { ErrorPage, type Viewer } from "./views/layout.js";
import {
  HomePage,
  isFailure,
  OwnerPage,
  ownerPath,
  SignInPage,
  type ChartData,
  type EntryFilter,
  type Failure,
  type Hold,
  type OwnerPageProps,
} from "./views/pages.js";

/** What the console writes to its log: pino's shape, so a pino logger fits. */
export interface ConsoleLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface ConsoleOptions {
  /** Where each ledger app answers. */
  urls: Readonly<Record<AppName, string>>;
  /** Seals the session cookie and signs CSRF tokens. */
  secret: string;
  /** The ledger calls' fetch; default globalThis.fetch (tests hand requests to the apps in-process). */
  fetch?: FetchLike;
  logger?: ConsoleLogger;
  /** The clock, for session ages. */
  nowMs?: () => number;
  ledgerTimeoutMs?: number;
  /** Failed sign-ins a client address may make per minute before the console answers 429; default 10. */
  signInFailuresPerMin?: number;
}

export const PAGE_SIZE = 50;
/** The chart plots at most this many entries: the newest of the range. */
export const CHART_POINTS_MAX = 1_000;
/** The ledger's largest page. */
const LEDGER_PAGE_MAX = 200;
const FORM_BYTES_MAX = 16 * 1024;
export const SIGN_IN_FAILURES_PER_MIN = 10;

const require = createRequire(import.meta.url);
const ownAsset = (name: string) => readFileSync(fileURLToPath(new URL(`./assets/${name}`, import.meta.url)));
// A Map, not an object: a name such as __proto__ or constructor is no asset.
const ASSETS = new Map<string, { body: Buffer; type: string }>([
  ["console.css", { body: ownAsset("console.css"), type: "text/css" }],
  ["chart.js", { body: ownAsset("chart.js"), type: "text/javascript" }],
  ["uplot.min.css", { body: readFileSync(require.resolve("uplot/dist/uPlot.min.css")), type: "text/css" }],
  [
    "uplot.iife.min.js",
    { body: readFileSync(require.resolve("uplot/dist/uPlot.iife.min.js")), type: "text/javascript" },
  ],
]);

const silent: ConsoleLogger = { info() {}, warn() {}, error() {} };

type Env = { Variables: { session: Session | undefined } };

export function createConsole(opts: ConsoleOptions) {
  const sealer = createSealer(opts.secret);
  const ledgers: Ledgers = createLedgers({
    urls: opts.urls,
    ...(opts.fetch ? { fetch: opts.fetch } : {}),
    ...(opts.ledgerTimeoutMs ? { timeoutMs: opts.ledgerTimeoutMs } : {}),
  });
  const log = opts.logger ?? silent;
  const now = opts.nowMs ?? Date.now;
  const app = new Hono<Env>();

  app.use(
    secureHeaders({
      contentSecurityPolicy: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", "data:"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        baseUri: ["'none'"],
      },
      // Owner ids are in the URLs: they go to no other site.
      referrerPolicy: "no-referrer",
      crossOriginEmbedderPolicy: false,
    }),
  );
  app.use(async (c, next) => {
    c.set("session", sealer.open(getCookie(c, SESSION_COOKIE), now()));
    await next();
    if (!c.req.path.startsWith("/assets/")) c.header("cache-control", "no-store");
  });
  app.use(
    bodyLimit({
      maxSize: FORM_BYTES_MAX,
      onError: (c) =>
        errorPage(c as Context<Env>, 413, {
          title: "Too large",
          code: "PAYLOAD_TOO_LARGE",
          message: "A form is at most 16 KiB.",
        }),
    }),
  );

  const viewerOf = (session: Session): Viewer => ({ auth: session.auth, csrf: sealer.csrfToken(session) });

  app.get("/health", (c) => c.json({ status: "ok" }));
  app.get("/assets/:name", (c) => {
    const found = ASSETS.get(c.req.param("name"));
    if (!found) return c.notFound();
    c.header("content-type", `${found.type}; charset=utf-8`);
    c.header("cache-control", "public, max-age=3600");
    return c.body(new Uint8Array(found.body));
  });

  app.get("/sign-in", (c) => {
    if (c.get("session")) return c.redirect("/", 303);
    // Only the console's own words: a link cannot choose what the sign-in page says.
    return render(
      c,
      200,
      <SignInPage error={c.req.query("ended") === KEY_REFUSED ? keyRefusedFailure : undefined} />,
    );
  });

  // The console's own bound on failed sign-ins per client address, in process. The ledger has one too,
  // but it sees every console user as the console's one address: without this, one person guessing keys
  // would make the ledger refuse everyone's sign-in.
  const signInFailures = new RateLimiterMemory({
    keyPrefix: "console-sign-in",
    points: opts.signInFailuresPerMin ?? SIGN_IN_FAILURES_PER_MIN,
    duration: 60,
  });

  app.post("/sign-in", async (c) => {
    // No session yet, so no CSRF token: a sign-in posted from another site is refused by its origin
    // (browsers send Origin on every cross-site POST), so nobody can sign a victim in with their key.
    if (!sameOrigin(c)) {
      return signInRefused(c, 403, {
        code: "CSRF_REJECTED",
        message: "This form was sent from another site.",
      });
    }
    const address = clientAddress(c);
    const tried = await signInFailures.get(address);
    if (tried !== null && tried.remainingPoints <= 0) {
      const retryAfterS = Math.max(1, Math.ceil(tried.msBeforeNext / 1000));
      return tooManySignIns(c, retryAfterS);
    }
    const raw = await formOf(c);
    const picked = z.enum(APP_NAMES).safeParse(raw.app);
    const form = z.object({ api_key: z.string().trim().max(200).optional() }).safeParse(raw);
    if (!form.success || !picked.success) {
      return signInRefused(
        c,
        400,
        {
          code: "VALIDATION_FAILED",
          message: picked.success
            ? "An API key is at most 200 characters."
            : "Pick the app the key belongs to (app1 or app2).",
        },
        picked.success ? picked.data : undefined,
      );
    }
    const appName = picked.data;
    const key = form.data.api_key ? form.data.api_key : undefined;
    const result = await signIn(ledgers, appName, key);
    if (!result.ok) {
      log.warn({ code: result.code, app: appName }, "console sign-in refused");
      if (result.status === 401 || result.status === 403) {
        try {
          await signInFailures.consume(address);
        } catch (error) {
          if (!(error instanceof RateLimiterRes)) throw error;
        }
      }
      if (result.status === 429) c.header("retry-after", String(result.retryAfterS ?? 60));
      return signInRefused(c, result.status, { code: result.code, message: result.message }, appName);
    }
    const session = newSession(result.auth, now());
    setCookie(c, SESSION_COOKIE, sealer.seal(session), {
      httpOnly: true,
      sameSite: "Strict",
      path: "/",
      secure: isHttps(c),
      maxAge: SESSION_MAX_AGE_S,
    });
    log.info(
      result.auth.mode === "off"
        ? { auth: "off", app: appName }
        : { auth: "required", key_id: result.auth.keyId, app: result.auth.app, scopes: result.auth.scopes },
      "console sign-in",
    );
    return c.redirect("/", 303);
  });

  app.post("/sign-out", async (c) => {
    const session = c.get("session");
    const form = await formOf(c);
    if (!session || !sealer.csrfValid(session, form.csrf)) return csrfRefusal(c);
    deleteCookie(c, SESSION_COOKIE, { path: "/", httpOnly: true, sameSite: "Strict", secure: isHttps(c) });
    return c.redirect("/sign-in", 303);
  });

  // Everything below needs a session: a page without one goes to sign-in, a POST is refused.
  app.use(async (c, next) => {
    if (c.get("session")) return next();
    if (c.req.method === "GET" || c.req.method === "HEAD") return c.redirect("/sign-in", 303);
    return csrfRefusal(c);
  });

  app.get("/", (c) => render(c, 200, <HomePage viewer={viewerOf(sessionOf(c))} />));

  app.get("/owners", (c) => {
    const ownerId = (c.req.query("owner_id") ?? "").trim();
    if (!OWNER_ID.test(ownerId)) {
      return render(
        c,
        400,
        <HomePage
          viewer={viewerOf(sessionOf(c))}
          error={{
            code: "VALIDATION_FAILED",
            message: "An owner id is 1 to 128 of A-Z a-z 0-9 _ . : @ -, starting with a letter, digit or _.",
          }}
        />,
      );
    }
    return c.redirect(ownerPath(ownerId), 303);
  });

  app.get("/owners/:id", async (c) => {
    const session = sessionOf(c);
    const viewer = viewerOf(session);
    const ownerId = c.req.param("id");
    const q = ownerQuery.safeParse(c.req.query());
    if (!OWNER_ID.test(ownerId) || !q.success) return invalidRequest(c, q);
    const { filter, cursor, explain: explainInput } = q.data;
    const auth = session.auth;
    const reader = ledgers.client(keyApp(auth), auth);
    let balance: OwnerPageProps["balance"];
    try {
      balance = await reader.balance(ownerId);
    } catch (error) {
      return ledgerFailed(c, `Owner ${ownerId}`, describeError(error), "/");
    }
    // An app sees only its own holds: a key's app, or with auth off every app.
    const holdApps: readonly AppName[] = auth.mode === "required" ? [keyApp(auth)] : APP_NAMES;
    const [holds, entries, chart, explain] = await Promise.all([
      settle(
        Promise.all(
          holdApps.map(async (a) => ({ app: a, holds: await activeHolds(ledgers.client(a, auth), ownerId) })),
        ),
      ),
      settle(
        reader.entries(ownerId, { ...entryQuery(filter), limit: PAGE_SIZE, ...(cursor ? { cursor } : {}) }),
      ),
      // The chart reads up to CHART_POINTS_MAX entries: on the first page only, not again for each older one.
      cursor ? Promise.resolve(undefined) : settle(chartData(reader, ownerId, filter)),
      settle(
        reader.summary(ownerId, {
          ...(explainInput.from ? { from: explainInput.from } : {}),
          // The ledger refuses a `to` in the future; what anyone picking one means is "until now".
          ...(explainInput.to && Date.parse(explainInput.to) < now() ? { to: explainInput.to } : {}),
        }),
      ),
    ]);
    if ([holds, entries, chart, explain].some((x) => isFailure(x) && keyRefused(x))) return signedOut(c);
    if (isFailure(entries)) return ledgerFailed(c, "Entries not read", entries, ownerPath(ownerId));
    return render(
      c,
      200,
      <OwnerPage
        viewer={viewer}
        ownerId={ownerId}
        balance={balance}
        holds={isFailure(holds) ? [] : holds}
        holdsError={isFailure(holds) ? holds : undefined}
        chart={chart}
        explain={explain}
        explainInput={explainInput}
        entries={entries.entries}
        nextCursor={entries.next_cursor}
        cursor={cursor}
        filter={filter}
        notice={
          q.data.notice && sealer.noticeValid(session, q.data.notice, q.data.sig) ? q.data.notice : undefined
        }
      />,
    );
  });

  app.get("/owners/:id/statement.csv", async (c) => {
    const session = sessionOf(c);
    const ownerId = c.req.param("id");
    const q = ownerQuery.safeParse(c.req.query());
    if (!OWNER_ID.test(ownerId) || !q.success) return invalidRequest(c, q);
    const reader = ledgers.client(keyApp(session.auth), session.auth);
    const query = { ...entryQuery(q.data.filter), limit: LEDGER_PAGE_MAX };
    // The first page is read before the answer starts, so a refusal (no such owner, a bad range) is
    // still a proper error page and not a broken download.
    let first: Awaited<ReturnType<Ledger["entries"]>>;
    try {
      first = await reader.entries(ownerId, query);
    } catch (error) {
      return ledgerFailed(c, "Statement not exported", describeError(error), ownerPath(ownerId));
    }
    const { from, to } = q.data.filter;
    const name = `statement-${ownerId.replace(/[^A-Za-z0-9_.-]/g, "_")}-${from ? from.slice(0, 10) : "start"}-${to ? to.slice(0, 10) : "now"}.csv`;
    log.info({ owner_id: ownerId, from, to, ...actorOf(session) }, "statement exported");
    // A pull stream, not hono's `stream` helper: a page is read only when the client has taken the last
    // one (a slow download does not buffer 100,000 entries), and a page that fails mid-way errors the
    // response, so the download is visibly broken instead of a statement that silently stops early.
    let nextPage: typeof first | undefined = first;
    let started = false;
    const encoder = new TextEncoder();
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          if (!started) {
            started = true;
            controller.enqueue(encoder.encode(statementHeader()));
          }
          if (nextPage === undefined) {
            controller.close();
            return;
          }
          controller.enqueue(encoder.encode(nextPage.entries.map((e: Entry) => statementRow(e)).join("")));
          nextPage = nextPage.next_cursor
            ? await reader.entries(ownerId, { ...query, cursor: nextPage.next_cursor })
            : undefined;
        } catch (error) {
          log.error(
            { owner_id: ownerId, code: describeError(error).code },
            "statement export failed mid-way",
          );
          controller.error(error);
        }
      },
    });
    c.header("content-type", "text/csv; charset=utf-8");
    c.header("content-disposition", `attachment; filename="${name}"`);
    return c.body(body);
  });

  // ---- Actions: CSRF token, the right scope, a reason and a confirmation, then one ledger call. ----

  interface ActionForm {
    nonce: string;
    reason: string;
    app?: AppName | undefined;
    amount?: number | undefined;
  }

  const actionForm = z.object({
    csrf: z.string().max(100),
    nonce: z.string().regex(/^[\x21-\x7e]{1,128}$/, "a form nonce is 1 to 128 printable characters"),
    reason: z
      .string()
      .trim()
      .min(1, "say why: a reason is required")
      .max(500, "a reason is at most 500 characters"),
    confirm: z.literal("yes", { error: 'tick "I confirm" to go ahead' }),
    app: z.enum(APP_NAMES).optional(),
    amount: z
      .string()
      .trim()
      .regex(/^\d{0,10}$/, "the amount is a whole number of credits")
      .optional()
      .transform((v) => (v ? Number(v) : undefined))
      .refine(
        (v) => v === undefined || (v >= 1 && v <= 1_000_000_000),
        "the amount is from 1 to 1,000,000,000",
      ),
  });

  /** What an action did: the notice for the page after it, and whose entry or hold it was, as the ledger says. */
  interface Done {
    notice: string;
    ownerId: string;
  }

  async function act(
    c: Context<Env>,
    what: { kind: string; needs: (s: Session) => boolean; missing: string },
    run: (form: ActionForm, session: Session) => Promise<Done>,
  ) {
    const session = sessionOf(c);
    const pageOwner = c.req.param("id") ?? "";
    const raw = await formOf(c);
    if (!sealer.csrfValid(session, raw.csrf)) return csrfRefusal(c);
    const back = OWNER_ID.test(pageOwner) ? ownerPath(pageOwner) : "/";
    if (!what.needs(session)) {
      return errorPage(c, 403, {
        title: `Not allowed: ${what.kind}`,
        code: "FORBIDDEN",
        message: what.missing,
        back,
      });
    }
    const parsed = actionForm.safeParse(raw);
    if (!OWNER_ID.test(pageOwner) || !parsed.success) {
      return errorPage(c, 400, {
        title: `Not done: ${what.kind}`,
        code: "VALIDATION_FAILED",
        message: invalidText(parsed),
        back,
      });
    }
    try {
      const done = await run(parsed.data, session);
      // An entry or hold id names its owner: the ledger's answer says whose it was, whatever page the form
      // was sent from, so the log and the page after it name that owner.
      const elsewhere = done.ownerId !== pageOwner;
      log.info(
        {
          action: what.kind,
          owner_id: done.ownerId,
          ...(elsewhere ? { page_owner_id: pageOwner } : {}),
          reason: parsed.data.reason,
          nonce: parsed.data.nonce,
          ...actorOf(session),
        },
        `console ${what.kind}`,
      );
      const notice = elsewhere
        ? `${done.notice} Note: this was owner ${done.ownerId}'s, not ${pageOwner}'s (the page the form was sent from).`
        : done.notice;
      const sig = sealer.noticeSig(session, notice);
      return c.redirect(`${ownerPath(done.ownerId)}?notice=${encodeURIComponent(notice)}&sig=${sig}`, 303);
    } catch (error) {
      if (error instanceof FormError) {
        return errorPage(c, error.status, {
          title: `Not done: ${what.kind}`,
          code: error.code,
          message: error.message,
          back,
        });
      }
      const d = describeError(error);
      log.warn(
        { action: what.kind, owner_id: pageOwner, code: d.code, ...actorOf(session) },
        `console ${what.kind} refused`,
      );
      return ledgerFailed(c, `Not done: ${what.kind}`, d, back);
    }
  }

  const adminNeeded = "Your API key has no admin scope: it may read, not act. Sign in with an admin key.";
  const replayed = (done: { replayed: boolean }) =>
    done.replayed ? " (Already done: this form had been sent before.)" : "";

  app.post("/owners/:id/entries/:entryId/reversal", (c) =>
    act(
      c,
      { kind: "reversal", needs: (s) => mayAct(s.auth), missing: adminNeeded },
      async (form, session) => {
        const entryId = Number(c.req.param("entryId"));
        if (!Number.isSafeInteger(entryId) || entryId < 1)
          throw new FormError("The entry id is not a positive whole number.");
        if (session.auth.mode === "required" && form.app && form.app !== session.auth.app) {
          throw new FormError(
            `Entry #${entryId} was written by ${form.app}; your key is ${session.auth.app}'s, and an app can reverse only its own entries.`,
            403,
            "FORBIDDEN",
          );
        }
        const done = await ledgers.client(keyApp(session.auth, form.app), session.auth).reverse(entryId, {
          nonce: form.nonce,
          reason: form.reason,
          ...(form.amount ? { amount: form.amount } : {}),
        });
        return {
          ownerId: done.entry.owner_id,
          notice: `Entry #${entryId} reversed: ${signed(done.entry.amount)} credits (entry #${done.entry.id}). Balance now ${done.balance}.${replayed(done)}`,
        };
      },
    ),
  );

  app.post("/owners/:id/holds/:holdId/release", (c) =>
    act(
      c,
      {
        kind: "release",
        needs: (s) => mayRelease(s.auth),
        missing: "Releasing a hold needs an API key with the write and admin scopes.",
      },
      async (form, session) => {
        const holdId = c.req.param("holdId");
        if (!/^[A-Za-z0-9_-]{1,64}$/.test(holdId)) throw new FormError("That is not a hold id.");
        const done = await ledgers
          .client(keyApp(session.auth, form.app), session.auth)
          .holds.release(holdId, { nonce: form.nonce });
        return {
          ownerId: done.hold.owner_id,
          notice: `Hold ${holdId} released: ${done.hold.amount} credits available again. Balance ${done.balance}, available ${done.available}.${replayed(done)}`,
        };
      },
    ),
  );

  app.post("/owners/:id/suspension", (c) =>
    act(
      c,
      { kind: "suspension", needs: (s) => mayAct(s.auth), missing: adminNeeded },
      async (form, session) => {
        const ownerId = c.req.param("id");
        await ledgers
          .client(keyApp(session.auth), session.auth)
          .suspend(ownerId, { nonce: form.nonce, reason: form.reason });
        return {
          ownerId,
          notice: `Owner ${ownerId} suspended: every app refuses its writes until it is reinstated.`,
        };
      },
    ),
  );

  app.post("/owners/:id/reinstatement", (c) =>
    act(
      c,
      { kind: "reinstatement", needs: (s) => mayAct(s.auth), missing: adminNeeded },
      async (form, session) => {
        const ownerId = c.req.param("id");
        await ledgers
          .client(keyApp(session.auth), session.auth)
          .reinstate(ownerId, { nonce: form.nonce, reason: form.reason });
        return { ownerId, notice: `Owner ${ownerId} reinstated.` };
      },
    ),
  );

  app.notFound((c) =>
    errorPage(c, 404, {
      title: "Not found",
      code: "NOT_FOUND",
      message: "There is no such page.",
      back: "/",
    }),
  );

  app.onError((error, c) => {
    if (error instanceof FormError) {
      return errorPage(c, error.status, {
        title: "Not done",
        code: error.code,
        message: error.message,
        back: "/",
      });
    }
    log.error({ err: error }, "console error");
    return errorPage(c, 500, {
      title: "Something went wrong",
      code: "INTERNAL",
      message: "The console failed to answer; it has been logged.",
      back: "/",
    });
  });

  /** The one shape of every error page: the signed-in header when there is a session, the code, a way back. */
  function errorPage(
    c: Context<Env>,
    status: number,
    what: { title: string; code: string; message: string; back?: string },
  ) {
    const session = c.get("session");
    return render(c, status, <ErrorPage viewer={session ? viewerOf(session) : undefined} {...what} />);
  }

  /** A ledger call's failure as a page; the ledger no longer taking the key ends the session instead. */
  function ledgerFailed(c: Context<Env>, title: string, d: Failure & { status: number }, back: string) {
    if (keyRefused(d)) return signedOut(c);
    return errorPage(c, d.status, { title, code: d.code, message: d.message, back });
  }

  function invalidRequest(c: Context<Env>, q: { success: boolean; error?: z.ZodError }) {
    return errorPage(c, 400, {
      title: "Not a valid request",
      code: "VALIDATION_FAILED",
      message: invalidText(q),
      back: "/",
    });
  }

  function signInRefused(c: Context<Env>, status: number, error: Failure, picked?: AppName) {
    return render(c, status, <SignInPage error={error} app={picked} />);
  }

  function tooManySignIns(c: Context<Env>, retryAfterS: number) {
    c.header("retry-after", String(retryAfterS));
    return signInRefused(c, 429, {
      code: "RATE_LIMITED",
      message: `Too many failed sign-ins from this address: try again in ${retryAfterS} s.`,
    });
  }

  function csrfRefusal(c: Context<Env>) {
    const session = c.get("session");
    return errorPage(c, 403, {
      title: "Refused",
      code: "CSRF_REJECTED",
      message: session
        ? "This form's security token is missing or wrong: reload the page and try again."
        : "Your session has ended: sign in again.",
      back: session ? "/" : "/sign-in",
    });
  }

  return app;
}

export type ConsoleApp = ReturnType<typeof createConsole>;

/** A refusal decided by the console itself, before any ledger call. */
class FormError extends Error {
  constructor(
    message: string,
    readonly status: 400 | 403 = 400,
    readonly code = "VALIDATION_FAILED",
  ) {
    super(message);
  }
}

/** A whole HTML page with its status. */
function render(c: Pick<Context, "html">, status: number, node: unknown) {
  return c.html(`<!doctype html>${String(node)}`, status as 200);
}

/** `?ended=` of the sign-in page after the ledger stopped taking the session's key. */
const KEY_REFUSED = "key-refused";
const keyRefusedFailure: Failure = {
  code: "UNAUTHENTICATED",
  message: "Your key is no longer accepted (revoked or expired): sign in again with a key that is.",
};

/** The ledger answered 401 to the session's own key: it was revoked (or auth was turned on) meanwhile. */
function keyRefused(d: Failure & { status: number }): boolean {
  return d.status === 401 && d.code === "UNAUTHENTICATED";
}

/** Ends the session whose key the ledger no longer takes, and says so on the sign-in page. */
function signedOut(c: Context<Env>) {
  deleteCookie(c, SESSION_COOKIE, { path: "/", httpOnly: true, sameSite: "Strict", secure: isHttps(c) });
  return c.redirect(`/sign-in?ended=${KEY_REFUSED}`, 303);
}

/** The address of the client, as the socket says (no proxy header is trusted); "unknown" in app.request(). */
function clientAddress(c: Context<Env>): string {
  const incoming = (c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined)?.incoming;
  return incoming?.socket?.remoteAddress ?? "unknown";
}

function sessionOf(c: Context<Env>): Session {
  const session = c.get("session");
  // The session middleware above has answered every request without one.
  if (!session) throw new Error("no session");
  return session;
}

function isHttps(c: Context<Env>): boolean {
  return new URL(c.req.url).protocol === "https:" || c.req.header("x-forwarded-proto") === "https";
}

function sameOrigin(c: Context<Env>): boolean {
  const origin = c.req.header("origin");
  if (origin === undefined || origin === "null") return c.req.header("sec-fetch-site") !== "cross-site";
  const host = c.req.header("host");
  try {
    return new URL(origin).host === (host ?? new URL(c.req.url).host);
  } catch {
    return false;
  }
}

async function formOf(c: Context<Env>): Promise<Record<string, string>> {
  const type = c.req.header("content-type") ?? "";
  if (!type.startsWith("application/x-www-form-urlencoded") && !type.startsWith("multipart/form-data"))
    return {};
  const body = await c.req.parseBody();
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(body)) if (typeof v === "string") out[k] = v;
  return out;
}

/** The session's key, for the log: its id, never the key. */
function actorOf(session: Session): Record<string, string> {
  return session.auth.mode === "required"
    ? { key_id: session.auth.keyId, app: session.auth.app }
    : { auth: "off" };
}

/**
 * The app a call goes through: the key's own; with auth off, the app that wrote the thing acted on, or
 * app1 (any app reads every app's entries).
 */
function keyApp(auth: SessionAuth, written?: AppName): AppName {
  return auth.mode === "required" ? auth.app : (written ?? "app1");
}

const instant = (label: string) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      const parsed = parseInstant(v);
      if (parsed === null) {
        ctx.addIssue({ code: "custom", message: `${label} is not a date and time` });
        return z.NEVER;
      }
      return parsed;
    });

const ownerQuery = z
  .object({
    app: z.union([z.enum(APP_NAMES), z.literal("")]).optional(),
    operation: z
      .string()
      .trim()
      .toUpperCase()
      .refine((v) => v === "" || OPERATION.test(v), "an operation is written like CREDIT_ADD")
      .optional(),
    from: instant("From"),
    to: instant("To"),
    cursor: z.string().max(512).optional(),
    explain_from: instant("Explain's from"),
    explain_to: instant("Explain's to"),
    notice: z.string().max(500).optional(),
    sig: z.string().max(100).optional(),
  })
  .transform((q) => ({
    filter: {
      app: q.app ? q.app : undefined,
      operation: q.operation ? q.operation : undefined,
      from: q.from,
      to: q.to,
    } satisfies EntryFilter,
    cursor: q.cursor ? q.cursor : undefined,
    explain: { from: q.explain_from, to: q.explain_to },
    notice: q.notice,
    sig: q.sig,
  }));

function invalidText(result: { success: boolean; error?: z.ZodError } | undefined): string {
  if (!result || result.success || !result.error) return "That owner id is not one the ledger accepts.";
  return result.error.issues.map((i) => `${i.path.join(".") || "form"}: ${i.message}`).join("; ");
}

function entryQuery(filter: EntryFilter) {
  return {
    ...(filter.app ? { app: filter.app } : {}),
    ...(filter.operation ? { operation: filter.operation } : {}),
    ...(filter.from ? { from: filter.from } : {}),
    ...(filter.to ? { to: filter.to } : {}),
  };
}

async function activeHolds(ledger: Ledger, ownerId: string): Promise<Hold[]> {
  const page = await ledger.holds.list(ownerId, { status: "active", limit: LEDGER_PAGE_MAX });
  return page.holds;
}

/** The running balance after each of the range's newest entries (every app's), oldest first. */
async function chartData(ledger: Ledger, ownerId: string, filter: EntryFilter): Promise<ChartData> {
  const points: ChartData["points"] = [];
  let cursor: string | undefined;
  let capped = false;
  const range = entryQuery({ from: filter.from, to: filter.to });
  do {
    const page = await ledger.entries(ownerId, {
      ...range,
      limit: LEDGER_PAGE_MAX,
      ...(cursor ? { cursor } : {}),
    });
    for (const e of page.entries) {
      points.push({
        t: Date.parse(e.created_at) / 1000,
        balance: e.balance_after,
        kind: chartKind(e.operation),
      });
    }
    cursor = page.next_cursor ?? undefined;
    if (points.length >= CHART_POINTS_MAX && cursor !== undefined) {
      capped = true;
      break;
    }
  } while (cursor !== undefined);
  return { points: points.slice(0, CHART_POINTS_MAX).reverse(), capped, capMax: CHART_POINTS_MAX };
}

/**
 * How the chart marks an entry: credits that expired (EXPIRY) and reversals. A HOLD_EXPIRY moves no
 * credit (amount 0: the held credits simply stop being held), so it is a plain point.
 */
export function chartKind(operation: string): ChartData["points"][number]["kind"] {
  if (operation === "EXPIRY") return "expiry";
  if (operation === "REVERSAL") return "reversal";
  return "entry";
}

/** A read that fails becomes a readable failure for its section; the rest of the page still shows. */
async function settle<T>(promise: Promise<T>): Promise<T | (Failure & { status: number })> {
  try {
    return await promise;
  } catch (error) {
    return describeError(error);
  }
}
