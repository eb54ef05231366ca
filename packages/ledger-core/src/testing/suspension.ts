// Suspension through HTTP, for every app: POST /ledger/{owner_id}/suspension and /reinstatement, what a
// suspended owner is refused and what it still gets, replays and conflicts of their nonces.
// describeAppSurface runs it; the routes' hostile input is in hostile-suspension.ts.
import { describe, expect, it } from "vitest";
import type { z } from "zod";
import type { HttpErrorCode } from "../http/problem.js";
import { statusChangeSchema as statusChangeContract } from "../features/suspension/routes.js";
import { freshNonce, freshOwner } from "./index.js";
import { manualClock, silentLogger } from "./deps.js";
import { expectProblem } from "./problems.js";
import {
  apply,
  entrySchema,
  expectReplayed,
  getEntries,
  JSON_HEADERS,
  op,
  postJson,
  readOwner,
  type RequestApp,
} from "./requests.js";
import { ownerState, tableCounts } from "./snapshots.js";
import { named } from "./tables.js";
import type { AppSurface } from "./app-surface.js";

export const statusChangeSchema = statusChangeContract.extend({ entry: entrySchema }).strict();
export type StatusChangeBody = z.infer<typeof statusChangeSchema>;

export type StatusRoute = "suspension" | "reinstatement";

/** POST /ledger/{owner_id}/{suspension|reinstatement} with a JSON body. */
export function postStatus(
  app: RequestApp,
  owner: string,
  route: StatusRoute,
  body: { reason?: string; nonce: string },
): Promise<Response> {
  return Promise.resolve(
    app.request(`/ledger/${encodeURIComponent(owner)}/${route}`, {
      method: "POST",
      headers: { ...JSON_HEADERS },
      body: JSON.stringify(body),
    }),
  );
}

/** Expects the status change applied (200, replayed false); returns the checked body. */
export async function expectStatusChanged(res: Response): Promise<StatusChangeBody> {
  const text = await res.text();
  expect(res.status, text).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^application\/json\b/);
  expect(res.headers.get("idempotent-replayed")).toBe("false");
  const body = statusChangeSchema.parse(JSON.parse(text));
  expect(body.replayed).toBe(false);
  return body;
}

/** Suspends an owner (reason "test"); returns the checked body. */
export async function suspend(
  app: RequestApp,
  owner: string,
  body: { reason?: string; nonce?: string } = {},
): Promise<StatusChangeBody> {
  return expectStatusChanged(
    await postStatus(app, owner, "suspension", {
      reason: body.reason ?? "test",
      nonce: body.nonce ?? freshNonce(),
    }),
  );
}

export async function reinstate(
  app: RequestApp,
  owner: string,
  body: { reason?: string; nonce?: string } = {},
): Promise<StatusChangeBody> {
  return expectStatusChanged(
    await postStatus(app, owner, "reinstatement", {
      ...(body.reason === undefined ? {} : { reason: body.reason }),
      nonce: body.nonce ?? freshNonce(),
    }),
  );
}

/** A valid request body for each of the catalog's operations (variable ones at their minimum). */
function everyOperation(s: AppSurface, owner: string) {
  return s.catalog.names.map((name) => {
    const def = s.catalog.get(name);
    return op(owner, name, def?.kind === "variable" ? { amount: def.min } : {});
  });
}

interface StatusRefusal {
  name: string;
  /** Sets up an owner and returns the refused request (after the setup, before the request). */
  arrange: (app: RequestApp) => Promise<{ owner: string; send: () => Promise<Response>; others?: string[] }>;
  status: number;
  code: HttpErrorCode;
}

export function describeSuspension(s: AppSurface): void {
  const snapshot = async (...owners: string[]) => ({
    owners: await Promise.all(owners.map((o) => ownerState(s.app(), o))),
    tables: await tableCounts(s.db()),
  });

  describe("POST /ledger/{owner_id}/suspension", () => {
    it("suspends with a SUSPENSION entry of amount 0 carrying the reason; reads say suspended", async () => {
      const owner = freshOwner();
      await apply(s.app(), op(owner, "CREDIT_ADD"));
      const nonce = freshNonce();
      const body = await suspend(s.app(), owner, { reason: "chargeback fraud: ticket #4411 — ü 😀", nonce });
      expect(body).toEqual({
        owner_id: owner,
        status: "suspended",
        balance: 10,
        available: 10,
        replayed: false,
        entry: {
          id: body.entry.id,
          app: s.name,
          operation: "SUSPENSION",
          owner_id: owner,
          amount: 0,
          balance_after: 10,
          sequence: 2,
          nonce,
          created_at: body.entry.created_at,
          reason: "chargeback fraud: ticket #4411 — ü 😀",
        },
      });
      expect(await readOwner(s.app(), owner)).toMatchObject({
        owner_id: owner,
        balance: 10,
        available: 10,
        held: 0,
        status: "suspended",
      });
      const page = await getEntries(s.app(), owner);
      expect(page.entries[0]).toEqual(body.entry);
    });

    it("refuses every operation of the app to a suspended owner with 422 OWNER_SUSPENDED, writing nothing", async () => {
      const owner = freshOwner();
      await apply(s.app(), op(owner, "CREDIT_ADD"));
      await suspend(s.app(), owner);
      const before = await snapshot(owner);
      for (const input of everyOperation(s, owner)) {
        const problem = await expectProblem(await postJson(s.app(), input), 422, "OWNER_SUSPENDED");
        expect(problem.details).toEqual({ owner_id: owner });
      }
      expect(await snapshot(owner)).toEqual(before);
    });

    it("checks a suspended owner's request first as any request (400), and still replays its old nonces", async () => {
      const owner = freshOwner();
      const earlier = op(owner, "CREDIT_ADD");
      const first = await apply(s.app(), earlier);
      await suspend(s.app(), owner);
      await expectProblem(
        await postJson(s.app(), op(owner, "CREDIT_ADD", { amount: 11 })),
        400,
        "AMOUNT_MISMATCH",
      );
      // The original answer to a request made before the suspension.
      expect(await expectReplayed(await postJson(s.app(), earlier))).toEqual({ ...first, replayed: true });
    });

    it("suspends an owner with no entries: the SUSPENSION is its first entry, and its first credit is refused", async () => {
      const owner = freshOwner();
      const body = await suspend(s.app(), owner);
      expect(body).toMatchObject({ status: "suspended", balance: 0, available: 0, entry: { sequence: 1 } });
      expect(await readOwner(s.app(), owner)).toMatchObject({ balance: 0, status: "suspended" });
      await expectProblem(await postJson(s.app(), op(owner, "CREDIT_ADD")), 422, "OWNER_SUSPENDED");
      expect(await ownerState(s.app(), owner)).toEqual({ balance: 0, entryCount: 1 });
    });

    it("records what is due first: credits past their expiry expire before the SUSPENSION, and after it too", async () => {
      const clock = manualClock("2026-03-01T10:00:00.000Z");
      const app = s.createApp({ db: s.db(), ping: s.ping, logger: silentLogger, clock: clock.now });
      const owner = freshOwner();
      await apply(app, op(owner, "CREDIT_ADD", { expires_at: "2026-03-01T11:00:00.000Z" }));
      await apply(app, op(owner, "CREDIT_ADD", { expires_at: "2026-03-01T13:00:00.000Z" }));
      clock.set("2026-03-01T12:00:00.000Z");
      const suspended = await suspend(app, owner);
      expect(suspended).toMatchObject({ balance: 10, available: 10, entry: { sequence: 4 } });
      // A suspended owner's credits still expire: the reinstatement records the expiry first.
      clock.set("2026-03-01T14:00:00.000Z");
      const reinstated = await reinstate(app, owner);
      expect(reinstated).toMatchObject({ balance: 0, available: 0, entry: { sequence: 6 } });
      const page = await getEntries(app, owner);
      expect(page.entries.map((e) => [e.operation, e.amount, e.balance_after])).toEqual([
        ["REINSTATEMENT", 0, 0],
        ["EXPIRY", -10, 0],
        ["SUSPENSION", 0, 10],
        ["EXPIRY", -10, 10],
        ["CREDIT_ADD", 10, 20],
        ["CREDIT_ADD", 10, 10],
      ]);
    });

    it("replays the same nonce and reason: 200, replayed: true, the original answer, nothing written, even after a reinstatement", async () => {
      const owner = freshOwner();
      await apply(s.app(), op(owner, "CREDIT_ADD"));
      const request = { reason: "abuse", nonce: freshNonce() };
      const first = await expectStatusChanged(await postStatus(s.app(), owner, "suspension", request));
      const before = await snapshot(owner);
      const replay = async () => {
        const res = await postStatus(s.app(), owner, "suspension", request);
        const text = await res.text();
        expect(res.status, text).toBe(200);
        expect(res.headers.get("idempotent-replayed")).toBe("true");
        return statusChangeSchema.parse(JSON.parse(text));
      };
      expect(await replay()).toEqual({ ...first, replayed: true });
      expect(await snapshot(owner)).toEqual(before);

      await reinstate(s.app(), owner);
      expect(await replay()).toEqual({ ...first, replayed: true });
      expect(await readOwner(s.app(), owner)).toMatchObject({ status: "active" });
    });
  });

  describe("POST /ledger/{owner_id}/reinstatement", () => {
    it("reinstates with a REINSTATEMENT entry of amount 0; operations are accepted again", async () => {
      const owner = freshOwner();
      await apply(s.app(), op(owner, "CREDIT_ADD"));
      await suspend(s.app(), owner);
      const nonce = freshNonce();
      const body = await reinstate(s.app(), owner, { reason: "cleared by support", nonce });
      expect(body).toEqual({
        owner_id: owner,
        status: "active",
        balance: 10,
        available: 10,
        replayed: false,
        entry: {
          id: body.entry.id,
          app: s.name,
          operation: "REINSTATEMENT",
          owner_id: owner,
          amount: 0,
          balance_after: 10,
          sequence: 3,
          nonce,
          created_at: body.entry.created_at,
          reason: "cleared by support",
        },
      });
      expect(await readOwner(s.app(), owner)).toMatchObject({ status: "active", balance: 10 });
      for (const input of everyOperation(s, owner)) {
        const res = await postJson(s.app(), input);
        expect([201, 422], await res.clone().text()).toContain(res.status);
        // What an active owner can be refused for, never OWNER_SUSPENDED.
        if (res.status === 422)
          expect(((await res.json()) as { code: string }).code).not.toBe("OWNER_SUSPENDED");
      }
    });

    it("takes no reason: the entry then has none", async () => {
      const owner = freshOwner();
      await suspend(s.app(), owner);
      const body = await reinstate(s.app(), owner);
      expect(body.entry.operation).toBe("REINSTATEMENT");
      expect(body.entry).not.toHaveProperty("reason");
      // Suspended and reinstated again: each time a new entry.
      await suspend(s.app(), owner);
      expect((await reinstate(s.app(), owner)).entry.sequence).toBe(4);
    });
  });

  describe("suspension and reinstatement refusals", () => {
    const withOwner = async (app: RequestApp, suspended: boolean) => {
      const owner = freshOwner();
      await apply(app, op(owner, "CREDIT_ADD"));
      if (suspended) await suspend(app, owner);
      return owner;
    };
    const rows: StatusRefusal[] = [
      {
        name: "a suspension of a suspended owner",
        arrange: async (app) => {
          const owner = await withOwner(app, true);
          return {
            owner,
            send: () => postStatus(app, owner, "suspension", { reason: "again", nonce: freshNonce() }),
          };
        },
        status: 409,
        code: "OWNER_ALREADY_SUSPENDED",
      },
      {
        name: "a reinstatement of an active owner",
        arrange: async (app) => {
          const owner = await withOwner(app, false);
          return { owner, send: () => postStatus(app, owner, "reinstatement", { nonce: freshNonce() }) };
        },
        status: 409,
        code: "OWNER_NOT_SUSPENDED",
      },
      {
        name: "a reinstatement of an owner with no entries (no owner row is left behind)",
        arrange: (app) => {
          const owner = freshOwner();
          return Promise.resolve({
            owner,
            send: () => postStatus(app, owner, "reinstatement", { reason: "x", nonce: freshNonce() }),
          });
        },
        status: 409,
        code: "OWNER_NOT_SUSPENDED",
      },
      {
        name: "a reinstatement of a reinstated owner",
        arrange: async (app) => {
          const owner = await withOwner(app, true);
          await reinstate(app, owner);
          return { owner, send: () => postStatus(app, owner, "reinstatement", { nonce: freshNonce() }) };
        },
        status: 409,
        code: "OWNER_NOT_SUSPENDED",
      },
      ...conflicts(),
    ];

    function conflicts(): StatusRefusal[] {
      const conflict = (name: string, arrange: StatusRefusal["arrange"]): StatusRefusal => ({
        name: `the nonce of ${name}`,
        arrange,
        status: 409,
        code: "NONCE_CONFLICT",
      });
      return [
        conflict("a suspension, with another reason", async (app) => {
          const owner = await withOwner(app, false);
          const nonce = freshNonce();
          await suspend(app, owner, { reason: "first", nonce });
          await reinstate(app, owner);
          return { owner, send: () => postStatus(app, owner, "suspension", { reason: "second", nonce }) };
        }),
        conflict("a suspension, for another owner", async (app) => {
          const owner = await withOwner(app, false);
          const other = await withOwner(app, false);
          const nonce = freshNonce();
          await suspend(app, owner, { reason: "same", nonce });
          return {
            owner,
            others: [other],
            send: () => postStatus(app, other, "suspension", { reason: "same", nonce }),
          };
        }),
        conflict("a suspension, on the reinstatement route", async (app) => {
          const owner = await withOwner(app, false);
          const nonce = freshNonce();
          await suspend(app, owner, { reason: "same", nonce });
          return { owner, send: () => postStatus(app, owner, "reinstatement", { reason: "same", nonce }) };
        }),
        conflict("a reinstatement with a reason, without it", async (app) => {
          const owner = await withOwner(app, true);
          const nonce = freshNonce();
          await reinstate(app, owner, { reason: "ok", nonce });
          await suspend(app, owner);
          return { owner, send: () => postStatus(app, owner, "reinstatement", { nonce }) };
        }),
        conflict("a reinstatement without a reason, with one", async (app) => {
          const owner = await withOwner(app, true);
          const nonce = freshNonce();
          await reinstate(app, owner, { nonce });
          await suspend(app, owner);
          return { owner, send: () => postStatus(app, owner, "reinstatement", { reason: "ok", nonce }) };
        }),
        conflict("a POST /ledger, on the suspension route", async (app) => {
          const owner = await withOwner(app, false);
          const nonce = freshNonce();
          await apply(app, op(owner, "CREDIT_ADD", { nonce }));
          return { owner, send: () => postStatus(app, owner, "suspension", { reason: "x", nonce }) };
        }),
        conflict("a suspension, on POST /ledger (one nonce space across routes)", async (app) => {
          const owner = await withOwner(app, false);
          const nonce = freshNonce();
          await suspend(app, owner, { nonce });
          await reinstate(app, owner);
          return { owner, send: () => postJson(app, op(owner, "CREDIT_ADD", { nonce })) };
        }),
      ];
    }

    describe.each(named(rows))("%s", (_, row) => {
      it(`answers ${row.status} ${row.code} and writes nothing`, async () => {
        const { owner, send, others = [] } = await row.arrange(s.app());
        const before = await snapshot(owner, ...others);
        const problem = await expectProblem(await send(), row.status, row.code);
        if (row.code !== "NONCE_CONFLICT") expect(problem.details).toEqual({ owner_id: owner });
        expect(await snapshot(owner, ...others)).toEqual(before);
      });
    });

    it("leaves a refused request's nonce unused", async () => {
      const owner = await withOwner(s.app(), false);
      const nonce = freshNonce();
      await expectProblem(
        await postStatus(s.app(), owner, "reinstatement", { nonce }),
        409,
        "OWNER_NOT_SUSPENDED",
      );
      expect((await suspend(s.app(), owner, { nonce })).entry.nonce).toBe(nonce);
    });
  });
}
