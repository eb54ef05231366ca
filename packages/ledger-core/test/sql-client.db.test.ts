// The write path's SQL client, on both drivers: statements sent together keep their order, a
// transaction commits with its last statements, and any failure leaves nothing behind.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sqlClientOf, type SqlClient } from "../src/store/sql-client.js";
import { openTestDatabase, testDriver, type TestDatabase } from "../src/testing/index.js";

let tdb: TestDatabase;
let client: SqlClient;

beforeAll(async () => {
  tdb = await openTestDatabase();
  client = sqlClientOf(tdb.db);
  await client.run([
    { text: "create table scratch (k text primary key, v int not null check (v >= 0))", params: [] },
  ]);
});

afterAll(async () => {
  await tdb.close();
});

const insert = (k: string, v: number) => ({
  text: "insert into scratch (k, v) values ($1, $2)",
  params: [k, v],
});
const count = async (prefix: string) => {
  const [rows = []] = await client.run([
    { text: "select count(*)::int as n from scratch where k like $1", params: [`${prefix}%`] },
  ]);
  return (rows[0] as { n: number }).n;
};

describe(`SqlClient (${testDriver()})`, () => {
  it("is the same client for the same database", () => {
    expect(sqlClientOf(tdb.db)).toBe(client);
  });

  it("runs statements sent together in order, one row array each", async () => {
    const results = await client.run([
      insert("order-1", 1),
      { text: "select v from scratch where k = $1", params: ["order-1"] },
      // A null element goes over as SQL NULL (limit periods rely on it). Read back in SQL: postgres.js
      // parses a NULL inside a returned text[] as the string "NULL".
      {
        text: "select array_length($1::text[], 1) as n, ($1::text[])[2] is null as null_kept",
        params: [["x", null, "z"]],
      },
    ]);
    expect(results).toEqual([[], [{ v: 1 }], [{ n: 3, null_kept: true }]]);
  });

  it("commits a transaction with its last statements", async () => {
    const rows = await client.transaction(async (tx) => {
      await tx.run([insert("commit-1", 1)]);
      return tx.runAndCommit([
        insert("commit-2", 2),
        { text: "select count(*)::int as n from scratch where k like 'commit-%'", params: [] },
      ]);
    });
    expect(rows[1]).toEqual([{ n: 2 }]);
    expect(await count("commit-")).toBe(2);
  });

  it("commits when fn returns without runAndCommit", async () => {
    await client.transaction((tx) => tx.run([insert("implicit-1", 1)]));
    expect(await count("implicit-")).toBe(1);
  });

  it("keeps nothing when a statement sent with the commit fails, and throws its error", async () => {
    const failing = client.transaction(async (tx) => {
      await tx.run([insert("failed-commit-1", 1)]);
      return tx.runAndCommit([insert("failed-commit-2", 2), insert("failed-commit-3", -1)]);
    });
    await expect(failing).rejects.toMatchObject({ code: "23514" });
    expect(await count("failed-commit-")).toBe(0);
  });

  it("rolls back when fn throws after its statements ran", async () => {
    const thrown = client.transaction(async (tx) => {
      await tx.run([insert("thrown-1", 1)]);
      throw new Error("changed my mind");
    });
    await expect(thrown).rejects.toThrow("changed my mind");
    expect(await count("thrown-")).toBe(0);
  });

  it("rolls back when a statement fails mid-transaction, and the connection is usable again", async () => {
    const failing = client.transaction(async (tx) => {
      await tx.run([insert("mid-1", 1)]);
      await tx.run([insert("mid-1", 2)]);
    });
    await expect(failing).rejects.toMatchObject({ code: "23505" });
    expect(await count("mid-")).toBe(0);
    // Every connection of the pool comes back clean: no transaction left open on any of them.
    for (let i = 0; i < 12; i++) {
      await client.transaction((tx) => tx.runAndCommit([insert(`after-${i}`, i)]));
    }
    expect(await count("after-")).toBe(12);
  });
});
