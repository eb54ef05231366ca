// Every kind of write, through an app's HTTP routes, for the tests of what the writes emit (the events'
// contract, the relay's delivery): credits with and without expiry, debits, holds captured in full and in
// part, released and left to expire, reversals, transfers, suspension and reinstatement, batches (atomic
// and not), and refusals and replays, which must emit nothing. The catalog needs CREDIT_ADD (fixed +10,
// takes expires_at), CREDIT_SPEND (fixed -1) and TEST_DEBIT (a variable debit of at least 2..50), as test/fixtures.ts has.
import { randomUUID } from "node:crypto";
import { expect } from "vitest";
import { JSON_HEADERS, type RequestApp } from "./requests.js";

export interface MixedLoadReport {
  /** Requests the ledger accepted and wrote (201, or 200 for a batch that wrote). */
  written: number;
  /** Requests it refused (4xx) or answered as replays: they must have written nothing. */
  refusedOrReplayed: number;
  /** The request id of each request sent, in order, and whether it wrote. */
  requests: { requestId: string; wrote: boolean }[];
  owners: string[];
}

/**
 * Runs `rounds` rounds of every kind of write for `owners` fresh owners, with a hold left to expire in
 * each round (expires_in_s 1: the caller sweeps after a second to have it recorded).
 */
export async function runMixedLoad(
  app: RequestApp,
  opts: { owners?: number; rounds?: number; prefix?: string } = {},
): Promise<MixedLoadReport> {
  const prefix = opts.prefix ?? `mix_${randomUUID().slice(0, 8)}`;
  const owners = Array.from({ length: opts.owners ?? 3 }, (_, i) => `${prefix}_${i}`);
  const report: MixedLoadReport = { written: 0, refusedOrReplayed: 0, requests: [], owners };
  let n = 0;
  const nonce = () => `${prefix}-n${(n += 1)}`;
  const send = async (path: string, body: unknown, expected: "write" | "refuse" | "replay") => {
    const requestId = `${prefix}-r${report.requests.length + 1}`;
    report.requests.push({ requestId, wrote: expected === "write" });
    const res = await app.request(path, {
      method: "POST",
      headers: { ...JSON_HEADERS, "x-request-id": requestId },
      body: JSON.stringify(body),
    });
    const json = (await res.json()) as Record<string, unknown>;
    const said = `${path} ${JSON.stringify(body)}: ${res.status} ${JSON.stringify(json)}`;
    if (expected === "write") expect([200, 201], said).toContain(res.status);
    else if (expected === "replay") expect(res.status, said).toBe(200);
    else expect(res.status >= 400 && res.status < 500, said).toBe(true);
    if (expected === "write") report.written += 1;
    else report.refusedOrReplayed += 1;
    return json;
  };
  const inAnHour = () => new Date(Date.now() + 3_600_000).toISOString();

  for (let round = 0; round < (opts.rounds ?? 2); round += 1) {
    for (const [i, owner] of owners.entries()) {
      const other = owners[(i + 1) % owners.length] ?? owner;
      const credit = { owner_id: owner, operation: "CREDIT_ADD", nonce: nonce() };
      await send("/ledger", credit, "write");
      await send("/ledger", credit, "replay");
      await send(
        "/ledger",
        { owner_id: owner, operation: "CREDIT_ADD", nonce: nonce(), expires_at: inAnHour() },
        "write",
      );
      const spend = (await send(
        "/ledger",
        { owner_id: owner, operation: "TEST_DEBIT", amount: 3, nonce: nonce() },
        "write",
      )) as {
        entry: { id: number };
      };
      // The same nonce for another request: refused (NONCE_CONFLICT), whatever the balance.
      await send("/ledger", { ...credit, operation: "CREDIT_SPEND" }, "refuse");

      const hold = async (amount: number, extra: Record<string, unknown> = {}) =>
        (
          (await send(
            "/ledger/holds",
            { owner_id: owner, operation: "TEST_DEBIT", amount, nonce: nonce(), ...extra },
            "write",
          )) as { hold: { id: string } }
        ).hold.id;
      await send(`/ledger/holds/${await hold(2)}/capture`, { nonce: nonce() }, "write");
      await send(`/ledger/holds/${await hold(4)}/capture`, { nonce: nonce(), amount: 1 }, "write");
      const released = await hold(2);
      await send(`/ledger/holds/${released}/release`, { nonce: nonce() }, "write");
      await send(`/ledger/holds/${released}/release`, { nonce: nonce() }, "refuse");
      await hold(2, { expires_in_s: 1 });

      await send(
        `/ledger/entries/${spend.entry.id}/reversal`,
        { nonce: nonce(), amount: 1, reason: "partial refund" },
        "write",
      );
      await send(
        "/ledger/transfers",
        { from_owner_id: owner, to_owner_id: other, amount: 2, nonce: nonce() },
        "write",
      );
      await send(`/ledger/${owner}/suspension`, { reason: "review", nonce: nonce() }, "write");
      await send("/ledger", { owner_id: owner, operation: "CREDIT_SPEND", nonce: nonce() }, "refuse");
      await send(`/ledger/${owner}/reinstatement`, { nonce: nonce() }, "write");

      await send(
        "/ledger/batch",
        {
          operations: [
            { owner_id: owner, operation: "CREDIT_SPEND", nonce: nonce() },
            { owner_id: other, operation: "CREDIT_ADD", nonce: nonce() },
          ],
        },
        "write",
      );
      const atomic = await send(
        "/ledger/batch",
        {
          atomic: true,
          operations: [
            { owner_id: owner, operation: "CREDIT_SPEND", nonce: nonce() },
            { owner_id: owner, operation: "CREDIT_SPEND", nonce: credit.nonce },
          ],
        },
        "refuse",
      );
      expect(atomic.code).toBeDefined();
    }
  }
  return report;
}
