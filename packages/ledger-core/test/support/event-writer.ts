// A writing process for test/events-order.pg.test.ts: `node --import tsx event-writer.ts <url> <app> <owners>
// <writes>` posts <writes> credits and debits for random owners of a shared set, <writes> of them in flight
// at once (so group commit makes batches of many owners), then prints "done <written>".
import { LedgerService } from "../../src/index.js";
import { openDatabase } from "../../src/store/index.js";
import { testCatalog } from "../fixtures.js";

const [url, app = "writer", owners = "20", writes = "300"] = process.argv.slice(2);
if (!url) throw new Error("usage: event-writer.ts <postgres url> <app> <owners> <writes>");
const database = await openDatabase({ url, poolSizeMax: 4, migrate: false });
const ledger = new LedgerService({ db: database.db, app, catalog: testCatalog });
let written = 0;
await Promise.all(
  Array.from({ length: Number(writes) }, async (_, i) => {
    const owner = `order_${Math.floor(Math.random() * Number(owners))}`;
    await ledger.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: `${app}-${i}` });
    written += 1;
  }),
);
await database.close();
process.stdout.write(`done ${written}\n`);
