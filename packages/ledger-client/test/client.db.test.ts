// The client against the real apps, in-process (see support.ts), on one fresh database for the file (PGlite,
// and real Postgres too when TEST_DATABASE_URL is set); every test works on fresh owner ids.
import { createApp as createApp1 } from "@ledger/app1/app";
import { createApp as createApp2 } from "@ledger/app2/app";
import {
  expectLedgerInvariants,
  freshNonce,
  freshOwner,
  openTestDatabase,
  testDriver,
} from "@ledger/core/testing";
import type { TestDatabase } from "@ledger/core/testing";
import { silentLogger } from "@ledger/core/testing/http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createLedgerClient,
  isLedgerApiError,
  LedgerApiError,
  LedgerNetworkError,
  LedgerResponseError,
  type App1Client,
  type App1Paths,
  type App2Paths,
  type LedgerClientOptions,
  type ProblemCode,
} from "../src/index.js";
import { timerDelay } from "../src/retry.js";
import {
  inProcessFetch,
  nonceOf,
  problemResponse,
  recordingDelay,
  scriptedFetch,
  type InProcessApp,
  type Step,
} from "./support.js";

const BASE_URL = "http://ledger.test";

let tdb: TestDatabase;
let app1: InProcessApp;
let app2: InProcessApp;

beforeAll(async () => {
  tdb = await openTestDatabase();
  // Both apps over one database, as `pnpm start` serves them: one balance per owner, whichever app asks.
  app1 = createApp1({ db: tdb.db, ping: () => tdb.ping(), logger: silentLogger });
  app2 = createApp2({ db: tdb.db, ping: () => tdb.ping(), logger: silentLogger });
});

afterAll(async () => {
  await expectLedgerInvariants(tdb);
  await tdb.close();
});

/** app1's client over the app itself; no waiting between attempts (the waits asked are recorded). */
function client1(opts: Partial<LedgerClientOptions> = {}): App1Client {
  return createLedgerClient<App1Paths>({
    baseUrl: BASE_URL,
    fetch: inProcessFetch(app1),
    delay: recordingDelay().delay,
    ...opts,
  });
}

/** An owner with `credits` credits (CREDIT_ADD gives 10 at a time). */
async function fundedOwner(credits = 10): Promise<string> {
  const owner = freshOwner("client");
  for (let i = 0; i < credits / 10; i++) await client1().post({ owner_id: owner, operation: "CREDIT_ADD" });
  return owner;
}

/** The rejection of `promise`, which must reject. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    (value) => expect.fail(`expected a rejection, got ${JSON.stringify(value)}`),
    (error: unknown) => error,
  );
}

describe(`@ledger/client against the apps [${testDriver()}]`, () => {
  describe("every route, happy path", () => {
    it("post applies an operation (201), and the same nonce again is its replay", async () => {
      const ledger = client1();
      const owner = freshOwner("client");
      const nonce = freshNonce();
      const applied = await ledger.post({ owner_id: owner, operation: "CREDIT_ADD", nonce });
      expect(applied).toMatchObject({
        owner_id: owner,
        balance: 10,
        available: 10,
        replayed: false,
        entry: { operation: "CREDIT_ADD", amount: 10, nonce, sequence: 1 },
      });
      const replay = await ledger.post({ owner_id: owner, operation: "CREDIT_ADD", nonce });
      expect(replay).toEqual({ ...applied, replayed: true });
    });

    it("post makes up a nonce when none is given, a new one per call", async () => {
      const ledger = client1();
      const owner = freshOwner("client");
      const first = await ledger.post({ owner_id: owner, operation: "CREDIT_ADD" });
      const second = await ledger.post({ owner_id: owner, operation: "CREDIT_ADD" });
      expect(first.entry.nonce).toMatch(/^[0-9a-f-]{36}$/);
      expect(second.entry.nonce).not.toBe(first.entry.nonce);
      expect(second).toMatchObject({ balance: 20, replayed: false });
    });

    it("batch applies its items in one request, each with its own nonce", async () => {
      const owner = freshOwner("client");
      const empty = freshOwner("client");
      const answer = await client1().batch({
        operations: [
          { owner_id: owner, operation: "CREDIT_ADD" },
          { owner_id: owner, operation: "CREDIT_SPEND" },
          { owner_id: empty, operation: "CREDIT_SPEND" },
        ],
      });
      expect(answer.results.map((r) => r.status)).toEqual([201, 201, 422]);
      expect(answer.results[1]?.body).toMatchObject({ balance: 9 });
      expect(answer.results[2]?.body).toMatchObject({ code: "INSUFFICIENT_BALANCE" });
      const nonces = answer.results
        .slice(0, 2)
        .map((r) => ("entry" in r.body ? r.body.entry.nonce : undefined));
      expect(new Set(nonces).size).toBe(2);
    });

    it("balance reads the balance now; balanceAt the balance at an instant", async () => {
      const ledger = client1();
      const owner = await fundedOwner(10);
      const afterFirst = new Date();
      await ledger.post({ owner_id: owner, operation: "CREDIT_ADD" });
      expect(await ledger.balance(owner)).toEqual({
        owner_id: owner,
        balance: 20,
        available: 20,
        held: 0,
        status: "active",
        expiring: [],
      });
      expect(await ledger.balanceAt(owner, afterFirst)).toEqual({
        owner_id: owner,
        balance: 10,
        at: afterFirst.toISOString(),
      });
    });

    it("entries pages with cursor and filters; allEntries follows every page", async () => {
      const ledger = client1();
      const owner = await fundedOwner(30);
      await ledger.post({ owner_id: owner, operation: "CONTENT_CREATION" });
      const first = await ledger.entries(owner, { limit: 2 });
      expect(first.entries.map((e) => e.sequence)).toEqual([4, 3]);
      expect(first.next_cursor).not.toBeNull();
      const second = await ledger.entries(owner, { limit: 2, cursor: first.next_cursor ?? "" });
      expect(second.entries.map((e) => e.sequence)).toEqual([2, 1]);
      const spent = await ledger.entries(owner, { operation: "CONTENT_CREATION" });
      expect(spent.entries.map((e) => e.amount)).toEqual([-5]);

      const all = [];
      for await (const entry of ledger.allEntries(owner, { limit: 1 })) all.push(entry.sequence);
      expect(all).toEqual([4, 3, 2, 1]);
    });

    it("summary sums the entries between two instants by app and operation, adding up to the change", async () => {
      const owner = await fundedOwner(10);
      const from = new Date();
      await client1().post({ owner_id: owner, operation: "CREDIT_ADD" });
      await client1().post({ owner_id: owner, operation: "CREDIT_SPEND" });
      const summary = await client1().summary(owner, { from: from.toISOString() });
      expect(summary).toMatchObject({
        owner_id: owner,
        from: from.toISOString(),
        balance_from: 10,
        balance_to: 19,
        change: 9,
        groups: [
          { app: "app1", operation: "CREDIT_ADD", entries: 1, amount: 10 },
          { app: "app1", operation: "CREDIT_SPEND", entries: 1, amount: -1 },
        ],
      });
      // Without a query: the 30 days before now.
      expect((await client1().summary(owner)).change).toBe(19);
    });

    it("currentKey says the app takes requests without a key (LEDGER_AUTH=off)", async () => {
      expect(await client1().currentKey()).toEqual({ auth: "off", key: null });
    });

    it("holds: place, get, list, capture; place and release", async () => {
      const ledger = client1();
      const owner = await fundedOwner(10);
      const placed = await ledger.holds.place({
        owner_id: owner,
        operation: "CONTENT_CREATION",
        expires_in_s: 600,
      });
      expect(placed).toMatchObject({
        balance: 10,
        available: 5,
        replayed: false,
        hold: { status: "active" },
      });
      expect(await ledger.holds.get(placed.hold.id)).toMatchObject({ id: placed.hold.id, amount: 5 });

      const captured = await ledger.holds.capture(placed.hold.id);
      expect(captured).toMatchObject({
        hold: { status: "captured", captured_amount: 5 },
        entry: { operation: "CONTENT_CREATION", amount: -5, hold_id: placed.hold.id },
        balance: 5,
      });

      const second = await ledger.holds.place({ owner_id: owner, operation: "CREDIT_SPEND" });
      const released = await ledger.holds.release(second.hold.id);
      expect(released).toMatchObject({ hold: { status: "released" }, balance: 5, available: 5 });

      const listed = await ledger.holds.list(owner);
      expect(listed.holds.map((h) => h.status)).toEqual(["released", "captured"]);
      const onlyCaptured = await ledger.holds.list(owner, { status: "captured" });
      expect(onlyCaptured.holds.map((h) => h.id)).toEqual([placed.hold.id]);
    });

    it("reverse gives a debit back, in part", async () => {
      const ledger = client1();
      const owner = await fundedOwner(10);
      const spent = await ledger.post({ owner_id: owner, operation: "CONTENT_CREATION" });
      const reversal = await ledger.reverse(spent.entry.id, { amount: 3, reason: "content removed" });
      expect(reversal).toMatchObject({
        entry: { operation: "REVERSAL", amount: 3, reverses: spent.entry.id, reason: "content removed" },
        balance: 8,
        original: { id: spent.entry.id, amount: -5, reversed_amount: 3 },
        replayed: false,
      });
    });

    it("transfer moves credits between two owners", async () => {
      const from = await fundedOwner(10);
      const to = freshOwner("client");
      const moved = await client1().transfer({ from_owner_id: from, to_owner_id: to, amount: 4 });
      expect(moved).toMatchObject({
        from: { owner_id: from, balance: 6, entry: { operation: "TRANSFER_OUT", amount: -4 } },
        to: { owner_id: to, balance: 4, entry: { operation: "TRANSFER_IN", amount: 4 } },
        replayed: false,
      });
    });

    it("suspend and reinstate an owner", async () => {
      const ledger = client1();
      const owner = await fundedOwner(10);
      const suspended = await ledger.suspend(owner, { reason: "chargeback under review" });
      expect(suspended).toMatchObject({
        owner_id: owner,
        status: "suspended",
        entry: { operation: "SUSPENSION" },
      });
      expect((await ledger.balance(owner)).status).toBe("suspended");
      const reinstated = await ledger.reinstate(owner, { reason: "cleared" });
      expect(reinstated).toMatchObject({
        owner_id: owner,
        status: "active",
        entry: { operation: "REINSTATEMENT" },
      });
    });

    it("events reads the event log page by page", async () => {
      const ledger = client1();
      const owner = await fundedOwner(10);
      const head = await ledger.events({ after: 0, limit: 1 });
      expect(head.events).toHaveLength(1);
      let after = head.next_position;
      const mine = [];
      for (let page = 0; page < 1_000 && mine.length === 0; page++) {
        const next = await ledger.events({ after, limit: 200 });
        mine.push(...next.events.filter((e) => e.owner_id === owner));
        if (next.events.length === 0) break;
        after = next.next_position;
      }
      expect(mine.map((e) => e.type)).toEqual(["entry.created"]);
    });

    it("streamUrl names the owner's stream route", () => {
      const ledger = createLedgerClient<App1Paths>({ baseUrl: `${BASE_URL}/` });
      expect(ledger.streamUrl("a@b:c")).toBe(`${BASE_URL}/ledger/a%40b%3Ac/stream`);
      expect(ledger.streamUrl("x", { after: 42 })).toBe(`${BASE_URL}/ledger/x/stream?after=42`);
    });

    it("app2's client takes app2's operations (a variable debit with its amount)", async () => {
      const owner = await fundedOwner(10);
      const ledger = createLedgerClient<App2Paths>({ baseUrl: BASE_URL, fetch: inProcessFetch(app2) });
      const used = await ledger.post({ owner_id: owner, operation: "TOKEN_USAGE", amount: 7 });
      expect(used).toMatchObject({
        balance: 3,
        entry: { app: "app2", operation: "TOKEN_USAGE", amount: -7 },
      });
    });
  });

  describe("the ledger's refusals are LedgerApiError with a typed code", () => {
    const cases: {
      name: string;
      status: number;
      code: ProblemCode;
      call: () => Promise<unknown>;
    }[] = [
      {
        name: "a debit of more than is available",
        status: 422,
        code: "INSUFFICIENT_BALANCE",
        call: () => client1().post({ owner_id: freshOwner("client"), operation: "CONTENT_CREATION" }),
      },
      {
        name: "an owner id that is not one",
        status: 400,
        code: "VALIDATION_FAILED",
        call: () => client1().post({ owner_id: "not an owner!", operation: "CREDIT_ADD" }),
      },
      {
        name: "another app's operation (through a client typed for every app)",
        status: 400,
        code: "UNKNOWN_OPERATION",
        call: () =>
          createLedgerClient({ baseUrl: BASE_URL, fetch: inProcessFetch(app1) }).post({
            owner_id: freshOwner("client"),
            operation: "TOKEN_USAGE",
            amount: 1,
          }),
      },
      {
        name: "a base URL that names no route",
        status: 404,
        code: "NOT_FOUND",
        call: () => client1({ baseUrl: `${BASE_URL}/v9` }).balance(freshOwner("client")),
      },
      {
        name: "a hold no one made",
        status: 404,
        code: "HOLD_NOT_FOUND",
        call: () => client1().holds.get(crypto.randomUUID()),
      },
      {
        name: "the reversal of an entry that does not exist",
        status: 404,
        code: "ENTRY_NOT_FOUND",
        call: () => client1().reverse(2_000_000_000),
      },
      {
        name: "reinstating an owner who is not suspended",
        status: 409,
        code: "OWNER_NOT_SUSPENDED",
        call: async () => client1().reinstate(await fundedOwner(10)),
      },
    ];

    it.each(cases)("$name: $status $code", async ({ status, code, call }) => {
      const error = await rejection(call());
      expect(error).toBeInstanceOf(LedgerApiError);
      expect(error).toMatchObject({ status, code, attempts: 1, problem: { status, code } });
      expect(isLedgerApiError(error, code)).toBe(true);
      expect((error as LedgerApiError).detail).toEqual((error as LedgerApiError).problem.detail);
    });

    it("VALIDATION_FAILED carries the fields it names", async () => {
      const error = await rejection(client1().post({ owner_id: "not an owner!", operation: "CREDIT_ADD" }));
      if (!isLedgerApiError(error, "VALIDATION_FAILED")) throw error;
      expect(error.problem.errors?.map((e) => e.path)).toEqual(["owner_id"]);
    });

    it("NONCE_CONFLICT carries the nonce that was refused", async () => {
      const owner = await fundedOwner(10);
      const nonce = freshNonce();
      await client1().post({ owner_id: owner, operation: "CREDIT_SPEND", nonce });
      const error = await rejection(
        client1().post({ owner_id: owner, operation: "CONTENT_CREATION", nonce }),
      );
      expect(error).toMatchObject({ status: 409, code: "NONCE_CONFLICT", nonce, nonces: [nonce] });
    });

    it("HOLD_NOT_ACTIVE carries the hold's status", async () => {
      const ledger = client1();
      const owner = await fundedOwner(10);
      const { hold } = await ledger.holds.place({ owner_id: owner, operation: "CREDIT_SPEND" });
      await ledger.holds.release(hold.id);
      const error = await rejection(ledger.holds.capture(hold.id));
      expect(error).toMatchObject({ code: "HOLD_NOT_ACTIVE", problem: { hold_status: "released" } });
    });

    it("an atomic batch's refusal names the item refused", async () => {
      const owner = await fundedOwner(10);
      const error = await rejection(
        client1().batch({
          atomic: true,
          operations: [
            { owner_id: owner, operation: "CREDIT_SPEND" },
            { owner_id: freshOwner("client"), operation: "CREDIT_SPEND" },
          ],
        }),
      );
      expect(error).toMatchObject({ status: 422, code: "INSUFFICIENT_BALANCE", problem: { index: 1 } });
      expect((error as LedgerApiError).nonces).toHaveLength(2);
      expect((await client1().balance(owner)).balance).toBe(10);
    });

    it("an error answer that is not a problem is a LedgerResponseError, not retried", async () => {
      const html = () =>
        new Response("<html>Bad Gateway</html>", { status: 502, headers: { "content-type": "text/html" } });
      const { fetch, sent } = scriptedFetch(app1, [html]);
      const error = await rejection(client1({ fetch }).balance(freshOwner("client")));
      expect(error).toBeInstanceOf(LedgerResponseError);
      expect(error).toMatchObject({ status: 502, body: "<html>Bad Gateway</html>" });
      expect(sent).toHaveLength(1);
    });

    it("a problem with a code this client does not know is a LedgerResponseError with its body", async () => {
      const { fetch } = scriptedFetch(app1, [() => problemResponse(418, "TEAPOT", "short and stout")]);
      const error = await rejection(client1({ fetch }).balance(freshOwner("client")));
      expect(error).toBeInstanceOf(LedgerResponseError);
      expect(error).toMatchObject({ status: 418, body: { code: "TEAPOT" } });
    });
  });

  describe("retries: 503s and failed connections, with the same nonce", () => {
    /** Posts CREDIT_ADD through a fetch that meets `steps`; the owner's entries as the ledger has them. */
    async function postThrough(steps: Step[], attempts = 4) {
      const owner = freshOwner("client");
      const { fetch, sent } = scriptedFetch(app1, steps);
      const { delay, waitsMs } = recordingDelay();
      const ledger = client1({ fetch, delay, retry: { attempts, baseDelayMs: 100, maxDelayMs: 1_000 } });
      const outcome = await ledger.post({ owner_id: owner, operation: "CREDIT_ADD" }).then(
        (answer) => ({ answer, error: undefined }),
        (error: unknown) => ({ answer: undefined, error }),
      );
      const entries = (await client1().entries(owner)).entries;
      return { ...outcome, sent, waitsMs, entries, owner };
    }

    it("503 twice, then the answer: applied once, every attempt with the same nonce", async () => {
      const { answer, sent, waitsMs, entries } = await postThrough(["503", "503"]);
      expect(answer).toMatchObject({ balance: 10, replayed: false });
      expect(sent).toHaveLength(3);
      expect(new Set(sent.map(nonceOf))).toEqual(new Set([answer?.entry.nonce]));
      expect(entries).toHaveLength(1);
      // Full jitter under a doubling ceiling: the first wait within 100 ms, the second within 200 ms.
      expect(waitsMs).toHaveLength(2);
      expect(waitsMs[0]).toBeLessThan(100);
      expect(waitsMs[1]).toBeLessThan(200);
    });

    it("a connection refused, then the answer", async () => {
      const { answer, sent, entries } = await postThrough(["refuse"]);
      expect(answer).toMatchObject({ balance: 10, replayed: false });
      expect(sent.map(nonceOf)).toEqual([answer?.entry.nonce, answer?.entry.nonce]);
      expect(entries).toHaveLength(1);
    });

    it("an answer lost after the write applied: the retry is its replay, written once", async () => {
      const { answer, sent, entries } = await postThrough(["lose-answer", "lose-answer"]);
      expect(answer).toMatchObject({ balance: 10, replayed: true });
      expect(sent).toHaveLength(3);
      expect(new Set(sent.map(nonceOf)).size).toBe(1);
      expect(entries.map((e) => e.nonce)).toEqual([answer?.entry.nonce]);
    });

    it("an attempt over timeoutMs is abandoned and retried", async () => {
      const owner = freshOwner("client");
      const { fetch, sent } = scriptedFetch(app1, ["hang"]);
      // Long enough that the second attempt, which reaches the app, answers within it on a loaded
      // machine (at 50 ms it once timed out too, and the third attempt was its replay).
      const answer = await client1({ fetch, timeoutMs: 1_000 }).post({
        owner_id: owner,
        operation: "CREDIT_ADD",
      });
      expect(answer).toMatchObject({ balance: 10, replayed: false });
      expect(sent).toHaveLength(2);
    });

    it("no answer on any attempt: LedgerNetworkError with the nonce to retry with later", async () => {
      const { error, sent, entries, owner } = await postThrough(["lose-answer", "refuse", "refuse"], 3);
      expect(error).toBeInstanceOf(LedgerNetworkError);
      expect(error).toMatchObject({ attempts: 3, route: "POST /ledger" });
      const nonce = (error as LedgerNetworkError).nonce;
      expect(sent.map(nonceOf)).toEqual([nonce, nonce, nonce]);
      // The first attempt did apply: sent again later with its nonce, it is answered as a replay.
      expect(entries).toHaveLength(1);
      const later = await client1().post({ owner_id: owner, operation: "CREDIT_ADD", nonce: nonce ?? "" });
      expect(later).toMatchObject({ replayed: true, balance: 10 });
    });

    it("503 on every attempt: the DATABASE_UNAVAILABLE problem once the attempts are spent", async () => {
      const { error, sent, entries } = await postThrough(["503", "503", "503"], 3);
      expect(error).toMatchObject({ status: 503, code: "DATABASE_UNAVAILABLE", attempts: 3 });
      expect(sent).toHaveLength(3);
      expect(entries).toHaveLength(0);
    });

    it("reads are retried too", async () => {
      const owner = await fundedOwner(10);
      const { fetch, sent } = scriptedFetch(app1, ["refuse", "503"]);
      expect((await client1({ fetch }).balance(owner)).balance).toBe(10);
      expect(sent).toHaveLength(3);
    });

    it.each([
      { name: "a 422 refusal", owner: () => freshOwner("client"), steps: [] as Step[], status: 422 },
      {
        name: "a 500",
        owner: () => freshOwner("client"),
        steps: [() => problemResponse(500, "INTERNAL_ERROR", "Something went wrong")],
        status: 500,
      },
    ])("$name is never retried", async ({ owner, steps, status }) => {
      const { fetch, sent } = scriptedFetch(app1, steps);
      const error = await rejection(
        client1({ fetch }).post({ owner_id: owner(), operation: "CONTENT_CREATION" }),
      );
      expect(error).toMatchObject({ status, attempts: 1 });
      expect(sent).toHaveLength(1);
    });
  });

  describe("429 RATE_LIMITED", () => {
    const rateLimited = (retryAfter?: string) => () =>
      problemResponse(
        429,
        "RATE_LIMITED",
        "Too many requests",
        retryAfter === undefined ? {} : { "retry-after": retryAfter },
      );

    it("waits the Retry-After it is told, then retries", async () => {
      const { fetch, sent } = scriptedFetch(app1, [rateLimited("2"), rateLimited("1")]);
      const { delay, waitsMs } = recordingDelay();
      const answer = await client1({ fetch, delay }).post({
        owner_id: freshOwner("client"),
        operation: "CREDIT_ADD",
      });
      expect(answer).toMatchObject({ balance: 10, replayed: false });
      expect(waitsMs).toEqual([2_000, 1_000]);
      expect(new Set(sent.map(nonceOf)).size).toBe(1);
    });

    it("a Retry-After over retryAfterMaxMs is not waited for: RATE_LIMITED with retryAfterS", async () => {
      const { fetch, sent } = scriptedFetch(app1, [rateLimited("120")]);
      const { delay, waitsMs } = recordingDelay();
      const error = await rejection(
        client1({ fetch, delay, retry: { retryAfterMaxMs: 60_000 } }).balance(freshOwner("client")),
      );
      expect(error).toMatchObject({ status: 429, code: "RATE_LIMITED", retryAfterS: 120, attempts: 1 });
      expect(waitsMs).toEqual([]);
      expect(sent).toHaveLength(1);
    });

    it("without Retry-After it backs off as for a 503", async () => {
      const { fetch } = scriptedFetch(app1, [rateLimited()]);
      const { delay, waitsMs } = recordingDelay();
      await client1({ fetch, delay, retry: { baseDelayMs: 100 } }).balance(freshOwner("client"));
      expect(waitsMs).toHaveLength(1);
      expect(waitsMs[0]).toBeLessThan(100);
    });
  });

  describe("auth and cancellation", () => {
    it("apiKey is sent as a bearer token on every request, retries included", async () => {
      const { fetch, sent } = scriptedFetch(app1, ["503"]);
      const apiKey = "lgr_0123456789abcdef_" + "A".repeat(43);
      await client1({ fetch, apiKey }).post({ owner_id: freshOwner("client"), operation: "CREDIT_ADD" });
      expect(sent.map((r) => r.headers.get("authorization"))).toEqual([
        `Bearer ${apiKey}`,
        `Bearer ${apiKey}`,
      ]);
    });

    it("without apiKey no Authorization header is sent", async () => {
      const { fetch, sent } = scriptedFetch(app1, []);
      await client1({ fetch }).balance(freshOwner("client"));
      expect(sent[0]?.headers.get("authorization")).toBeNull();
    });

    it("a problem answered 401 is UNAUTHENTICATED", async () => {
      const unauthenticated = () =>
        problemResponse(401, "UNAUTHENTICATED", "Send an API key", { "www-authenticate": "Bearer" });
      const { fetch, sent } = scriptedFetch(app1, [unauthenticated]);
      const error = await rejection(client1({ fetch }).balance(freshOwner("client")));
      expect(error).toMatchObject({ status: 401, code: "UNAUTHENTICATED" });
      expect(sent).toHaveLength(1);
    });

    it("an aborted call stops its attempt in flight and its retries, and rejects with the signal's reason", async () => {
      const controller = new AbortController();
      const reason = new Error("caller gave up");
      // The attempt hangs; the caller gives up while it waits on it.
      const { fetch, sent } = scriptedFetch(app1, ["hang", "503", "503"]);
      setTimeout(() => controller.abort(reason), 50);
      const error = await rejection(
        client1({ fetch }).balance(freshOwner("client"), { signal: controller.signal }),
      );
      expect(error).toBe(reason);
      expect(sent).toHaveLength(1);
    });

    it("an abort during the wait between attempts ends the wait at once", async () => {
      const controller = new AbortController();
      const reason = new Error("caller gave up");
      const { fetch, sent } = scriptedFetch(app1, ["503", "503", "503"]);
      const started = Date.now();
      const call = client1({
        fetch,
        delay: timerDelay,
        retry: { attempts: 3, baseDelayMs: 3_600_000, maxDelayMs: 3_600_000 },
      }).balance(freshOwner("client"), { signal: controller.signal });
      setTimeout(() => controller.abort(reason), 50);
      expect(await rejection(call)).toBe(reason);
      expect(sent).toHaveLength(1);
      // A wait drawn from up to an hour (under 50 ms once in 70,000 runs), cut short.
      expect(Date.now() - started).toBeLessThan(30_000);
    });
  });
});
