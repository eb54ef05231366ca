// The ledger's behaviour through the shared operations (DAILY_REWARD, SIGNUP_CREDIT, CREDIT_SPEND,
// CREDIT_ADD), which every app offers: reads, paging, idempotency, the balance rule and the limits.
// describeAppSurface runs it, so each app's suite runs it against that app; an app's own suite keeps
// only what its own operations add.
import { describe, expect, it } from "vitest";
import type { OperationCatalogView } from "../domain/operations.js";
import type { HttpErrorCode } from "../http/problem.js";
import { expectedBalance, freshNonce, freshOwner } from "./index.js";
import { manualClock, silentLogger } from "./deps.js";
import { expectProblem } from "./problems.js";
import {
  apply,
  expectApplied,
  expectReplayed,
  getBalance,
  getEntries,
  op,
  postJson,
  type PostInput,
} from "./requests.js";
import { ownerState, tableCounts } from "./snapshots.js";
import { named } from "./tables.js";
import type { AppSurface } from "./app-surface.js";

/** The catalog's operations limited to once per owner, with the credits each gives. */
function onceOperations(catalog: OperationCatalogView): [string, number][] {
  return catalog.names.flatMap((name): [string, number][] => {
    const def = catalog.get(name);
    return def?.kind === "fixed" && def.limit === "once" ? [[name, def.amount]] : [];
  });
}

/** A request reusing an applied request's nonce, changed in one way, and the answer it must get. */
export interface NonceConflict {
  name: string;
  change: () => Partial<PostInput>;
  status: number;
  code: HttpErrorCode;
}

/** A row answered 409 NONCE_CONFLICT. */
export const conflict = (name: string, change: NonceConflict["change"]): NonceConflict => ({
  name,
  change,
  status: 409,
  code: "NONCE_CONFLICT",
});

/**
 * For each row: apply a request (`applied` does, and returns it), send it again changed by the row, and
 * expect the row's answer, with nothing written for either owner involved.
 */
export function describeNonceConflicts(
  s: Pick<AppSurface, "app" | "db">,
  applied: () => Promise<PostInput>,
  rows: readonly NonceConflict[],
): void {
  const state = async (owner: string) => ({
    owner: await ownerState(s.app(), owner),
    tables: await tableCounts(s.db()),
  });
  describe.each(named(rows))("the same nonce with %s", (_, { change, status, code }) => {
    it(`answers ${status} ${code} and writes nothing`, async () => {
      const input = await applied();
      const changed = { ...input, ...change() };
      const before = { mine: await state(input.owner_id), theirs: await state(changed.owner_id) };
      await expectProblem(await postJson(s.app(), changed), status, code);
      expect({ mine: await state(input.owner_id), theirs: await state(changed.owner_id) }).toEqual(before);
    });
  });
}

export function describeSharedOperations(s: AppSurface): void {
  const snapshot = async (owner: string) => ({
    owner: await ownerState(s.app(), owner),
    tables: await tableCounts(s.db()),
  });

  describe("POST /ledger, shared operations", () => {
    it("accepts application/json with a charset parameter", async () => {
      const owner = freshOwner();
      await expectApplied(
        await s.app().request("/ledger", {
          method: "POST",
          headers: { "content-type": "application/json; charset=utf-8" },
          body: JSON.stringify(op(owner, "CREDIT_ADD")),
        }),
      );
      expect(await getBalance(s.app(), owner)).toBe(10);
    });

    it("accepts owner ids and nonces of 128 characters, and owner ids with . : @ - that round-trip in the path", async () => {
      const longOwner = freshOwner("long").padEnd(128, "x");
      const longNonce = freshNonce().padEnd(128, "n");
      const body = await apply(s.app(), op(longOwner, "CREDIT_ADD", { nonce: longNonce }));
      expect(body.entry).toMatchObject({ owner_id: longOwner, nonce: longNonce });
      expect(await getBalance(s.app(), longOwner)).toBe(10);

      const emailish = freshOwner("jane.doe@example.com:tenant-7");
      await apply(s.app(), op(emailish, "SIGNUP_CREDIT"));
      // Unencoded in the path: these characters need no escaping there.
      const res = await s.app().request(`/ledger/${emailish}`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual(expectedBalance(emailish, 3));
    });
  });

  describe("GET /ledger/{owner_id}", () => {
    it("answers the owner's balance", async () => {
      const owner = freshOwner();
      await apply(s.app(), op(owner, "CREDIT_ADD"));
      await apply(s.app(), op(owner, "CREDIT_SPEND"));
      const res = await s.app().request(`/ledger/${owner}`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^application\/json\b/);
      expect(await res.json()).toEqual(expectedBalance(owner, 9));
    });

    it("answers 0 for an owner with no entries, and writes nothing", async () => {
      const before = await tableCounts(s.db());
      expect(await getBalance(s.app(), freshOwner())).toBe(0);
      expect(await tableCounts(s.db())).toEqual(before);
    });

    it("answers with a trailing slash too", async () => {
      const owner = freshOwner();
      await apply(s.app(), op(owner, "SIGNUP_CREDIT"));
      const res = await s.app().request(`/ledger/${owner}/`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual(expectedBalance(owner, 3));
    });
  });

  describe("GET /ledger/{owner_id}/entries", () => {
    it("answers an empty page for an owner with no entries", async () => {
      const owner = freshOwner();
      expect(await getEntries(s.app(), owner)).toEqual({ owner_id: owner, entries: [], next_cursor: null });
    });

    it("pages through the history with next_cursor: no entry twice, none missed", async () => {
      const owner = freshOwner();
      for (let i = 0; i < 5; i++) await apply(s.app(), op(owner, "CREDIT_ADD"));

      const seen: number[][] = [];
      let cursor: string | null = null;
      do {
        const query: string = cursor === null ? "?limit=2" : `?limit=2&cursor=${encodeURIComponent(cursor)}`;
        const page = await getEntries(s.app(), owner, query);
        seen.push(page.entries.map((e) => e.sequence));
        cursor = page.next_cursor;
      } while (cursor !== null && seen.length < 10);

      expect(seen).toEqual([[5, 4], [3, 2], [1]]);
    });

    it("gives no next_cursor when a page ends exactly at the oldest entry", async () => {
      const owner = freshOwner();
      for (let i = 0; i < 4; i++) await apply(s.app(), op(owner, "CREDIT_ADD"));
      const first = await getEntries(s.app(), owner, "?limit=2");
      expect(first.next_cursor).not.toBeNull();
      const second = await getEntries(s.app(), owner, `?limit=2&cursor=${first.next_cursor ?? ""}`);
      expect(second.entries.map((e) => e.sequence)).toEqual([2, 1]);
      expect(second.next_cursor).toBeNull();
    });

    it("pages 50 entries by default, and takes up to 200", async () => {
      const owner = freshOwner();
      for (let i = 0; i < 51; i++) await apply(s.app(), op(owner, "CREDIT_ADD"));
      const first = await getEntries(s.app(), owner);
      expect(first.entries).toHaveLength(50);
      expect(first.next_cursor).not.toBeNull();
      const rest = await getEntries(s.app(), owner, `?cursor=${first.next_cursor ?? ""}`);
      expect(rest.entries.map((e) => e.sequence)).toEqual([1]);
      expect(rest.next_cursor).toBeNull();
      expect((await getEntries(s.app(), owner, "?limit=200")).entries).toHaveLength(51);
    });
  });

  describe("idempotency, shared operations", () => {
    it("replays the same nonce with the same request: the same entry, 200, replayed, nothing written", async () => {
      const owner = freshOwner();
      const input = op(owner, "CREDIT_ADD");
      const first = await apply(s.app(), input);
      const before = await snapshot(owner);

      const again = await expectReplayed(await postJson(s.app(), input));
      expect(again).toEqual({ ...first, replayed: true });
      expect(await snapshot(owner)).toEqual(before);
      expect(before.owner.balance).toBe(10);
    });

    it("replays with the original answer even after later writes moved the balance", async () => {
      const owner = freshOwner();
      const input = op(owner, "CREDIT_ADD");
      const first = await apply(s.app(), input);
      await apply(s.app(), op(owner, "CREDIT_SPEND"));
      const again = await expectReplayed(await postJson(s.app(), input));
      expect(again).toEqual({ ...first, replayed: true });
      expect(await getBalance(s.app(), owner)).toBe(9);
    });

    it("treats a fixed amount stated or left out as the same request", async () => {
      const owner = freshOwner();
      const nonce = freshNonce();
      const first = await apply(s.app(), op(owner, "CREDIT_ADD", { nonce }));
      const again = await expectReplayed(
        await postJson(s.app(), op(owner, "CREDIT_ADD", { nonce, amount: 10 })),
      );
      expect(again.entry).toEqual(first.entry);
    });

    describeNonceConflicts(s, async () => {
      const input = op(freshOwner(), "CREDIT_ADD");
      await apply(s.app(), input);
      return input;
    }, [
      conflict("another operation", () => ({ operation: "SIGNUP_CREDIT" })),
      conflict("another owner", () => ({ owner_id: freshOwner() })),
      conflict("a debit instead", () => ({ operation: "CREDIT_SPEND" })),
      // The amount is checked against the operation before the nonce is looked up.
      { name: "a wrong amount", change: () => ({ amount: 11 }), status: 400, code: "AMOUNT_MISMATCH" },
    ]);

    it("does not use up the nonce of a refused request", async () => {
      const owner = freshOwner();
      const nonce = freshNonce();
      await expectProblem(
        await postJson(s.app(), op(owner, "CREDIT_SPEND", { nonce })),
        422,
        "INSUFFICIENT_BALANCE",
      );
      // The same refused request again is refused again, not replayed as if it had succeeded.
      await expectProblem(
        await postJson(s.app(), op(owner, "CREDIT_SPEND", { nonce })),
        422,
        "INSUFFICIENT_BALANCE",
      );
      const applied = await apply(s.app(), op(owner, "CREDIT_ADD", { nonce }));
      expect(applied.entry).toMatchObject({ nonce, sequence: 1, balance_after: 10 });
    });
  });

  describe("balance rule, shared operations", () => {
    it("refuses a spend from an empty balance with 422 INSUFFICIENT_BALANCE and writes nothing", async () => {
      const owner = freshOwner();
      const before = await snapshot(owner);
      const problem = await expectProblem(
        await postJson(s.app(), op(owner, "CREDIT_SPEND")),
        422,
        "INSUFFICIENT_BALANCE",
      );
      expect(problem.details).toMatchObject({ owner_id: owner, balance: 0, required: 1 });
      expect(await snapshot(owner)).toEqual(before);
    });
  });

  describe("limits", () => {
    it.each(onceOperations(s.catalog))(
      "gives %s (+%i) once per owner: the second answers 422 LIMIT_REACHED and writes nothing",
      async (operation, credits) => {
        const owner = freshOwner();
        expect((await apply(s.app(), op(owner, operation))).balance).toBe(credits);
        const before = await snapshot(owner);
        const problem = await expectProblem(
          await postJson(s.app(), op(owner, operation)),
          422,
          "LIMIT_REACHED",
        );
        expect(problem.details).toMatchObject({ operation, limit: "once" });
        expect(await snapshot(owner)).toEqual(before);
        expect(before.owner.balance).toBe(credits);
        // The limit is per owner: another owner still gets theirs.
        expect((await apply(s.app(), op(freshOwner(), operation))).balance).toBe(credits);
      },
    );

    it.each(["2026-03-01T10:00:00.000Z", "2026-07-14T00:00:00.000Z"])(
      "gives DAILY_REWARD once per owner per UTC day, by the injected clock (first at %s)",
      async (start) => {
        const clock = manualClock(start);
        const clocked = s.createApp({ db: s.db(), ping: s.ping, logger: silentLogger, clock: clock.now });
        const owner = freshOwner();
        const day = start.slice(0, 10);

        const first = await apply(clocked, op(owner, "DAILY_REWARD"));
        expect(first.entry.created_at).toBe(start);

        clock.set(`${day}T23:59:59.999Z`);
        const before = await snapshot(owner);
        const problem = await expectProblem(
          await postJson(clocked, op(owner, "DAILY_REWARD")),
          422,
          "LIMIT_REACHED",
        );
        expect(problem.details).toMatchObject({ operation: "DAILY_REWARD", limit: "daily", period: day });
        expect(await snapshot(owner)).toEqual(before);

        const next = new Date(Date.parse(`${day}T00:00:00.000Z`) + 86_400_000).toISOString();
        clock.set(next);
        expect(await apply(clocked, op(owner, "DAILY_REWARD"))).toMatchObject({
          balance: 2,
          entry: { sequence: 2, created_at: next },
        });
      },
    );
  });
}
