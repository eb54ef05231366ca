// The engine's seams, used the way a new feature would use them, with nothing of the feature in the
// engine: a command that loads a fact of its own table under the owner's lock, decides against it (and
// against what earlier commands of the same batch did to it), appends an entry and writes a row of its
// own table in the batch's write round trip. The table is made by this test, as a feature's migration
// would make it.
import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { LedgerService, ValidationError } from "../src/index.js";
import type { Command, FactLoader, RowWriter } from "../src/engine/command.js";
import { toLedgerEntry } from "../src/store/reads.js";
import { queryRows } from "../src/store/index.js";
import { freshNonce, freshOwner, testDriver, useTestDatabase } from "../src/testing/index.js";
import { testCatalog } from "./fixtures.js";

const tdb = useTestDatabase();
let ledger: LedgerService;

beforeAll(async () => {
  await tdb().db.execute(
    sql`create table test_notes (owner_id text not null, sequence bigint not null, note text not null, n int not null)`,
  );
  ledger = new LedgerService({ db: tdb().db, app: "app-a", catalog: testCatalog });
});

/** How many notes each owner has: the feature's fact. */
const noteCount: FactLoader<number> = {
  name: "test.noteCount",
  statement: (owners) => ({
    text: "select owner_id, count(*)::int as n from test_notes where owner_id = any($1::text[]) group by owner_id",
    params: [owners],
  }),
  parse: (rows) => new Map((rows as { owner_id: string; n: number }[]).map((r) => [r.owner_id, r.n])),
};

interface NoteRow {
  ownerId: string;
  sequence: number;
  note: string;
  n: number;
}

const noteWriter: RowWriter<NoteRow> = {
  name: "test.notes",
  statement: (rows) => ({
    text: `insert into test_notes (owner_id, sequence, note, n)
           select * from unnest($1::text[], $2::bigint[], $3::text[], $4::int[])`,
    params: [
      rows.map((r) => r.ownerId),
      rows.map((r) => String(r.sequence)),
      rows.map((r) => r.note),
      rows.map((r) => r.n),
    ],
  }),
};

/** Adds a note: a zero-amount entry plus a row of the feature's table; "refuse" is refused. */
function addNote(
  ownerId: string,
  note: string,
  nonce = freshNonce(),
): Command<{ n: number; entryId: number }> {
  return {
    kind: "test.addNote",
    nonce,
    needs: () => ({ owners: [ownerId], facts: [{ loader: noteCount, keys: [ownerId] }] }),
    decide(draft, now) {
      if (note === "refuse")
        return { ok: false, error: new ValidationError([{ path: "note", message: "refused" }]) };
      const n = (draft.fact(noteCount, ownerId) ?? 0) + 1;
      const { entry } = draft.append(
        { app: "app-a", operation: "TEST_NOTE", ownerId, amount: 0, nonce },
        now,
      );
      draft.setFact(noteCount, ownerId, n);
      draft.emit(noteWriter, { ownerId, sequence: entry.sequence, note, n });
      return {
        ok: true,
        answer: (rows) => {
          const row = rows.at(-1);
          if (!row) throw new Error("the note's entry was not written");
          return { n, entryId: toLedgerEntry(row).id };
        },
      };
    },
    replay: (recorded) => (recorded.ownerId === ownerId ? { n: -1, entryId: recorded.id } : null),
  };
}

describe(`engine seams: a feature's own facts and rows [${testDriver()}]`, () => {
  it("loads a fact under the lock, sees earlier commands of the batch change it, and writes its rows with the batch", async () => {
    const owner = freshOwner();
    const answers = await Promise.allSettled(
      ["first", "second", "refuse", "third"].map((note) => ledger.submit(addNote(owner, note))),
    );
    expect(
      answers.map((a) => (a.status === "fulfilled" ? a.value.n : (a.reason as { code: string }).code)),
    ).toEqual([1, 2, "VALIDATION_FAILED", 3]);
    const rows = await queryRows<{ sequence: string; note: string; n: number }>(
      tdb().db,
      sql`select sequence::text as sequence, note, n from test_notes where owner_id = ${owner} order by sequence`,
    );
    expect(rows).toEqual([
      { sequence: "1", note: "first", n: 1 },
      { sequence: "2", note: "second", n: 2 },
      { sequence: "3", note: "third", n: 3 },
    ]);
    // A later batch reads the fact from the table.
    expect(await ledger.submit(addNote(owner, "fourth"))).toMatchObject({ n: 4 });
  });

  it("answers a replay from the entry its nonce recorded, writing no row", async () => {
    const owner = freshOwner();
    const nonce = freshNonce();
    const first = await ledger.submit(addNote(owner, "once", nonce));
    expect(await ledger.submit(addNote(owner, "once", nonce))).toEqual({ n: -1, entryId: first.entryId });
    const count = await queryRows<{ n: number }>(
      tdb().db,
      sql`select count(*)::int as n from test_notes where owner_id = ${owner}`,
    );
    expect(count).toEqual([{ n: 1 }]);
  });
});
