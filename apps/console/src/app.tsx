/** @jsxRuntime automatic */
/** @jsxImportSource hono/jsx */
// The support console: server-rendered pages over the ledger's HTTP API (@ledger/client, never SQL).
// Real forms and links, so it works with the keyboard and without a framework in the browser; one small
// script of ours draws the chart with uPlot. Every asset is served from here.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { FetchLike } from "@ledger/client";
import { Hono, type Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { secureHeaders } from "hono/secure-headers";
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
} from "./session.js";
import { ErrorPage, type Viewer } from "./views/layout.js";
import {
  HomePage,
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
}

export const PAGE_SIZE = 50;
/** The chart plots at most this many entries: the newest of the range. */
export const CHART_POINTS_MAX = 1_000;
/** The ledger's largest page. */
const LEDGER_PAGE_MAX = 200;
const FORM_BYTES_MAX = 16 * 1024;

const require = createRequire(import.meta.url);
const asset = (path: string) => readFileSync(path);
const ASSETS: Record<string, { body: Buffer; type: string }> = {
  "console.css": { body: asset(new URL("./assets/console.css", import.meta.url).pathname), type: "text/css" },
  "chart.js": {
    body: asset(new URL("./assets/chart.js", import.meta.url).pathname),
    type: "text/javascript",
  },
  "uplot.min.css": { body: asset(require.resolve("uplot/dist/uPlot.min.css")), type: "text/css" },
  "uplot.iife.min.js": {
    body: asset(require.resolve("uplot/dist/uPlot.iife.min.js")),
    type: "text/javascript",
  },
};

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
        page(
          c,
          413,
          <ErrorPage title="Too large" code="PAYLOAD_TOO_LARGE" message="A form is at most 16 KiB." />,
        ),
    }),
  );

  const viewerOf = (session: Session): Viewer => ({ auth: session.auth, csrf: sealer.csrfToken(session) });

  app.get("/health", (c) => c.json({ status: "ok" }));
  app.get("/assets/:name", (c) => {
    const found = ASSETS[c.req.param("name")];
    if (!found) return c.notFound();
    c.header("content-type", `${found.type}; charset=utf-8`);
    c.header("cache-control", "public, max-age=3600");
    return c.body(new Uint8Array(found.body));
  });

  app.get("/sign-in", (c) => {
    if (c.get("session")) return c.redirect("/", 303);
    return page(c, 200, <SignInPage />);
  });

  app.post("/sign-in", async (c) => {
    // No session yet, so no CSRF token: a sign-in posted from another site is refused by its origin
    // (browsers send Origin on every cross-site POST), so nobody can sign a victim in with their key.
    if (!sameOrigin(c)) {
      return page(
        c,
        403,
        <SignInPage error={{ code: "CSRF_REJECTED", message: "This form was sent from another site." }} />,
      );
    }
    const form = z.object({ api_key: z.string().trim().max(200).optional() }).safeParse(await formOf(c));
    if (!form.success) {
      return page(
        c,
        400,
        <SignInPage
          error={{ code: "VALIDATION_FAILED", message: "An API key is at most 200 characters." }}
        />,
      );
    }
    const key = form.data.api_key ? form.data.api_key : undefined;
    const result = await signIn(ledgers, key);
    if (!result.ok) {
      log.warn({ code: result.code }, "console sign-in refused");
      return page(c, result.status, <SignInPage error={{ code: result.code, message: result.message }} />);
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
        ? { auth: "off" }
        : { auth: "required", key_id: result.auth.keyId, app: result.auth.app, scopes: result.auth.scopes },
      "console sign-in",
    );
    return c.redirect("/", 303);
  });

  app.post("/sign-out", async (c) => {
    const session = c.get("session");
    const form = await formOf(c);
    if (!session || !sealer.csrfValid(session, field(form, "csrf"))) return csrfRefusal(c);
    deleteCookie(c, SESSION_COOKIE, { path: "/", httpOnly: true, sameSite: "Strict", secure: isHttps(c) });
    return c.redirect("/sign-in", 303);
  });

  // Everything below needs a session: a page without one goes to sign-in, a POST is refused.
  app.use(async (c, next) => {
    if (c.get("session")) return next();
    if (c.req.method === "GET" || c.req.method === "HEAD") return c.redirect("/sign-in", 303);
    return csrfRefusal(c);
  });

  app.get("/", (c) => page(c, 200, <HomePage viewer={viewerOf(sessionOf(c))} />));

  app.get("/owners", (c) => {
    const ownerId = (c.req.query("owner_id") ?? "").trim();
    if (!OWNER_ID.test(ownerId)) {
      return page(
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
    if (!OWNER_ID.test(ownerId) || !q.success) {
      return page(
        c,
        400,
        <ErrorPage
          viewer={viewer}
          title="Not a valid request"
          code="VALIDATION_FAILED"
          message={invalidText(q)}
          back="/"
        />,
      );
    }
    const { filter, cursor, explain: explainInput } = q.data;
    const auth = session.auth;
    const reader = ledgers.client(readApp(session), auth);
    let balance: OwnerPageProps["balance"];
    try {
      balance = await reader.balance(ownerId);
    } catch (error) {
      const d = describeError(error);
      return page(
        c,
        d.status,
        <ErrorPage viewer={viewer} title={`Owner ${ownerId}`} code={d.code} message={d.message} back="/" />,
      );
    }
    const holdApps: readonly AppName[] = auth.mode === "required" ? [auth.app] : APP_NAMES;
    const [holds, entries, chart, explain] = await Promise.all([
      settle(
        Promise.all(
          holdApps.map(async (a) => ({ app: a, holds: await activeHolds(ledgers.client(a, auth), ownerId) })),
        ),
      ),
      settle(
        reader.entries(ownerId, { ...entryQuery(filter), limit: PAGE_SIZE, ...(cursor ? { cursor } : {}) }),
      ),
      settle(chartData(reader, ownerId, filter)),
      settle(
        reader.summary(ownerId, {
          ...(explainInput.from ? { from: explainInput.from } : {}),
          // The ledger refuses a `to` in the future; what anyone picking one means is "until now".
          ...(explainInput.to && Date.parse(explainInput.to) < now() ? { to: explainInput.to } : {}),
        }),
      ),
    ]);
    if (isFailed(entries)) {
      return page(
        c,
        entries.status,
        <ErrorPage
          viewer={viewer}
          title="Entries not read"
          code={entries.code}
          message={entries.message}
          back={ownerPath(ownerId)}
        />,
      );
    }
    return page(
      c,
      200,
      <OwnerPage
        viewer={viewer}
        ownerId={ownerId}
        balance={balance}
        holds={isFailed(holds) ? [] : holds}
        holdsError={isFailed(holds) ? holds : undefined}
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
    const viewer = viewerOf(session);
    const ownerId = c.req.param("id");
    const q = ownerQuery.safeParse(c.req.query());
    if (!OWNER_ID.test(ownerId) || !q.success) {
      return page(
        c,
        400,
        <ErrorPage
          viewer={viewer}
          title="Not a valid request"
          code="VALIDATION_FAILED"
          message={invalidText(q)}
          back="/"
        />,
      );
    }
    const reader = ledgers.client(readApp(session), session.auth);
    const query = { ...entryQuery(q.data.filter), limit: LEDGER_PAGE_MAX };
    // The first page is read before the answer starts, so a refusal (no such owner, a bad range) is
    // still a proper error page and not a broken download.
    let first: Awaited<ReturnType<Ledger["entries"]>>;
    try {
      first = await reader.entries(ownerId, query);
    } catch (error) {
      const d = describeError(error);
      return page(
        c,
        d.status,
        <ErrorPage
          viewer={viewer}
          title="Statement not exported"
          code={d.code}
          message={d.message}
          back={ownerPath(ownerId)}
        />,
      );
    }
    const { from, to } = q.data.filter;
    const name = `statement-${ownerId.replace(/[^A-Za-z0-9_.-]/g, "_")}-${from ? from.slice(0, 10) : "start"}-${to ? to.slice(0, 10) : "now"}.csv`;
    log.info({ owner_id: ownerId, from, to, ...actorOf(session) }, "statement exported");
    // A pull stream, not hono's `stream` helper: a page is read only when the client has taken the last
    // one (a slow download does not buffer 100,000 entries), and a page that fails mid-way errors the
    // response, so the download is visibly broken instead of a statement that silently stops early.
    let page_: typeof first | undefined = first;
    let started = false;
    const encoder = new TextEncoder();
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          if (!started) {
            started = true;
            controller.enqueue(encoder.encode(statementHeader()));
          }
          if (page_ === undefined) {
            controller.close();
            return;
          }
          controller.enqueue(encoder.encode(page_.entries.map((e: Entry) => statementRow(e)).join("")));
          page_ = page_.next_cursor
            ? await reader.entries(ownerId, { ...query, cursor: page_.next_cursor })
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

  async function act(
    c: Context<Env>,
    what: { kind: string; needs: (s: Session) => boolean; missing: string },
    run: (form: ActionForm, session: Session) => Promise<string>,
  ) {
    const session = sessionOf(c);
    const viewer = viewerOf(session);
    const ownerId = c.req.param("id") ?? "";
    const raw = await formOf(c);
    if (!sealer.csrfValid(session, field(raw, "csrf"))) return csrfRefusal(c);
    const back = OWNER_ID.test(ownerId) ? ownerPath(ownerId) : "/";
    if (!what.needs(session)) {
      return page(
        c,
        403,
        <ErrorPage
          viewer={viewer}
          title={`Not allowed: ${what.kind}`}
          code="FORBIDDEN"
          message={what.missing}
          back={back}
        />,
      );
    }
    const parsed = actionForm.safeParse(raw);
    if (!OWNER_ID.test(ownerId) || !parsed.success) {
      return page(
        c,
        400,
        <ErrorPage
          viewer={viewer}
          title={`Not done: ${what.kind}`}
          code="VALIDATION_FAILED"
          message={invalidText(parsed)}
          back={back}
        />,
      );
    }
    try {
      const notice = await run(parsed.data, session);
      log.info(
        {
          action: what.kind,
          owner_id: ownerId,
          reason: parsed.data.reason,
          nonce: parsed.data.nonce,
          ...actorOf(session),
        },
        `console ${what.kind}`,
      );
      const sig = sealer.noticeSig(session, notice);
      return c.redirect(`${ownerPath(ownerId)}?notice=${encodeURIComponent(notice)}&sig=${sig}`, 303);
    } catch (error) {
      if (error instanceof FormError) {
        return page(
          c,
          error.status,
          <ErrorPage
            viewer={viewer}
            title={`Not done: ${what.kind}`}
            code={error.code}
            message={error.message}
            back={back}
          />,
        );
      }
      const d = describeError(error);
      log.warn(
        { action: what.kind, owner_id: ownerId, code: d.code, ...actorOf(session) },
        `console ${what.kind} refused`,
      );
      return page(
        c,
        d.status,
        <ErrorPage
          viewer={viewer}
          title={`Not done: ${what.kind}`}
          code={d.code}
          message={d.message}
          back={back}
        />,
      );
    }
  }

  /** The app a write goes through: the key's own; with auth off, the app that wrote the thing. */
  function actingApp(session: Session, written: AppName | undefined): AppName {
    if (session.auth.mode === "required") return session.auth.app;
    return written ?? "app1";
  }

  const adminNeeded = "Your API key has no admin scope: it may read, not act. Sign in with an admin key.";

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
        const app_ = actingApp(session, form.app);
        const done = await ledgers.client(app_, session.auth).reverse(entryId, {
          nonce: form.nonce,
          reason: form.reason,
          ...(form.amount ? { amount: form.amount } : {}),
        });
        return `Entry #${entryId} reversed: ${signed(done.entry.amount)} credits (entry #${done.entry.id}). Balance now ${done.balance}.${done.replayed ? " (Already done: this form had been sent before.)" : ""}`;
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
          .client(actingApp(session, form.app), session.auth)
          .holds.release(holdId, { nonce: form.nonce });
        return `Hold ${holdId} released: ${done.hold.amount} credits available again. Balance ${done.balance}, available ${done.available}.${done.replayed ? " (Already done: this form had been sent before.)" : ""}`;
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
          .client(actingApp(session, undefined), session.auth)
          .suspend(ownerId, { nonce: form.nonce, reason: form.reason });
        return `Owner ${ownerId} suspended: every app refuses its writes until it is reinstated.`;
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
          .client(actingApp(session, undefined), session.auth)
          .reinstate(ownerId, { nonce: form.nonce, reason: form.reason });
        return `Owner ${ownerId} reinstated.`;
      },
    ),
  );

  app.notFound((c) => {
    const session = c.get("session");
    return page(
      c,
      404,
      <ErrorPage
        viewer={session ? viewerOf(session) : undefined}
        title="Not found"
        code="NOT_FOUND"
        message="There is no such page."
        back="/"
      />,
    );
  });

  app.onError((error, c) => {
    const session = c.get("session");
    const viewer = session ? viewerOf(session) : undefined;
    if (error instanceof FormError) {
      return page(
        c,
        error.status,
        <ErrorPage viewer={viewer} title="Not done" code={error.code} message={error.message} back="/" />,
      );
    }
    log.error({ err: error }, "console error");
    return page(
      c,
      500,
      <ErrorPage
        viewer={viewer}
        title="Something went wrong"
        code="INTERNAL"
        message="The console failed to answer; it has been logged."
        back="/"
      />,
    );
  });

  function csrfRefusal(c: Context<Env>) {
    const session = c.get("session");
    return page(
      c,
      403,
      <ErrorPage
        viewer={session ? viewerOf(session) : undefined}
        title="Refused"
        code="CSRF_REJECTED"
        message={
          session
            ? "This form's security token is missing or wrong: reload the page and try again."
            : "Your session has ended: sign in again."
        }
        back={session ? "/" : "/sign-in"}
      />,
    );
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

function page(c: Pick<Context, "html">, status: number, node: unknown) {
  return c.html(`<!doctype html>${String(node)}`, status as 200);
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

function field(form: Record<string, string>, name: string): string | undefined {
  return form[name];
}

/** The session's key, for the log: its id, never the key. */
function actorOf(session: Session): Record<string, string> {
  return session.auth.mode === "required"
    ? { key_id: session.auth.keyId, app: session.auth.app }
    : { auth: "off" };
}

function readApp(session: Session): AppName {
  return session.auth.mode === "required" ? session.auth.app : "app1";
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
      const kind =
        e.operation === "EXPIRY" || e.operation === "HOLD_EXPIRY"
          ? "expiry"
          : e.operation === "REVERSAL"
            ? "reversal"
            : "entry";
      points.push({ t: Date.parse(e.created_at) / 1000, balance: e.balance_after, kind });
    }
    cursor = page.next_cursor ?? undefined;
    if (points.length >= CHART_POINTS_MAX && cursor !== undefined) {
      capped = true;
      break;
    }
  } while (cursor !== undefined);
  return { points: points.slice(0, CHART_POINTS_MAX).reverse(), capped, capMax: CHART_POINTS_MAX };
}

type Failed = Failure & { status: number; failed: true };

function isFailed<T>(x: T | Failed): x is Failed {
  return typeof x === "object" && x !== null && (x as { failed?: unknown }).failed === true;
}

/** A read that fails becomes a readable failure for its section; the rest of the page still shows. */
async function settle<T>(promise: Promise<T>): Promise<T | Failed> {
  try {
    return await promise;
  } catch (error) {
    const d = describeError(error);
    return { code: d.code, message: d.message, status: d.status, failed: true };
  }
}
