// Embedded PGlite on disk: the default a newcomer runs on. No server needed, so this is a unit test.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DataDirInUseError, openDatabase } from "../src/db/index.js";
import { LedgerService } from "../src/index.js";
import { freshOwner } from "../src/testing/index.js";
import { testCatalog } from "./fixtures.js";

describe("embedded PGlite on disk", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "ledger-pglite-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("keeps its data across a restart", async () => {
    const dataDir = join(dir, "persist");
    const owner = freshOwner();
    const first = await openDatabase({ dataDir });
    await new LedgerService({ db: first.db, app: "app-a", catalog: testCatalog }).post({
      owner_id: owner,
      operation: "SIGNUP_CREDIT",
      nonce: "n1",
    });
    await first.close();

    const second = await openDatabase({ dataDir });
    const service = new LedgerService({ db: second.db, app: "app-a", catalog: testCatalog });
    expect((await service.balance(owner)).balance).toBe(3);
    const replay = await service.post({ owner_id: owner, operation: "SIGNUP_CREDIT", nonce: "n1" });
    expect(replay.replayed).toBe(true);
    await second.close();
  });

  it("refuses a data directory another live process holds, and takes over a stale lock", async () => {
    const dataDir = join(dir, "locked");
    writeFileSync(`${dataDir}.lock`, String(process.ppid));
    await expect(openDatabase({ dataDir })).rejects.toBeInstanceOf(DataDirInUseError);

    writeFileSync(`${dataDir}.lock`, "2147483646"); // no such process
    const db = await openDatabase({ dataDir });
    await db.ping();
    await db.close();
  });
});
