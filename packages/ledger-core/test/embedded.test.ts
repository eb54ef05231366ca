// Embedded PGlite on disk: the default a newcomer runs on. No server needed, so this is a unit test.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../src/cli/ledger.js";
import { DataDirInUseError, openDatabase } from "../src/store/index.js";
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

  it("`ledger verify` runs on a PGlite data directory, and says so when it has no ledger", async () => {
    const dataDir = join(dir, "cli");
    const chunks: string[] = [];
    const io = { out: (t: string) => chunks.push(t), err: (t: string) => chunks.push(t) };
    expect(await main(["verify"], { LEDGER_DATA_DIR: dataDir }, io)).toBe(2);
    expect(chunks.join("")).toContain("no ledger schema");

    const db = await openDatabase({ dataDir });
    await new LedgerService({ db: db.db, app: "app-a", catalog: testCatalog }).post({
      owner_id: freshOwner(),
      operation: "CREDIT_ADD",
      nonce: "n1",
    });
    // While another live process holds the directory (the test's parent stands in for an app), the CLI
    // is refused with the reason rather than let in as a second writer.
    chunks.length = 0;
    writeFileSync(`${dataDir}.lock`, String(process.ppid));
    expect(await main(["verify"], { LEDGER_DATA_DIR: dataDir }, io)).toBe(2);
    expect(chunks.join("")).toContain("in use by process");
    await db.close();

    chunks.length = 0;
    expect(await main(["verify"], { LEDGER_DATA_DIR: dataDir }, io)).toBe(0);
    expect(chunks.join("")).toContain("verify: all 32 checks passed");
  });
});
