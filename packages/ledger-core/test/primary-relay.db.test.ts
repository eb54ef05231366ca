// The relay of a multi-worker server runs in the primary, which sends its state to the workers; each
// worker's /health reports it. Here both sides over an in-memory channel: what a worker reports before
// the first state arrives (the lag it reads itself, as a standby) and after (the primary's, its age
// counted again), that other messages are ignored, and that a worker whose channel closed gets nothing.
import { EventEmitter } from "node:events";
import { describe, expect, it, onTestFinished } from "vitest";
import type { Relay, RelayState } from "../src/features/events/relay.js";
import { broadcastRelayState, relayOfPrimary, type StateReceiver } from "../src/runtime/primary-relay.js";
import { expectLedgerInvariants, freshOwner, openTestDatabase, testDriver } from "../src/testing/index.js";
import { silentLogger } from "../src/testing/deps.js";
import { apply, op } from "../src/testing/requests.js";
import { ledgerAppFactory } from "../src/http/index.js";
import { testCatalog } from "./fixtures.js";

const createApp = ledgerAppFactory({ name: "primary-test", catalog: testCatalog, title: "t", version: "0" });

function primaryState(overrides: Partial<RelayState> = {}): RelayState {
  return {
    role: "active",
    broker: "nats",
    broker_connected: true,
    pending: 3,
    oldest_pending_at: new Date(Date.now() - 60_000).toISOString(),
    oldest_pending_age_ms: 0,
    ...overrides,
  };
}

async function until(check: () => boolean, limitMs = 10_000): Promise<void> {
  const giveUpAt = Date.now() + limitMs;
  while (!check()) {
    if (Date.now() > giveUpAt) throw new Error("gave up waiting");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe(`the primary's relay as a worker sees it [${testDriver()}]`, () => {
  it("reports its own reading of the lag as a standby until the primary's state comes, then the primary's", async () => {
    const tdb = await openTestDatabase();
    onTestFinished(async () => {
      await expectLedgerInvariants(tdb);
      await tdb.close();
    });
    const app = createApp({ db: tdb.db, ping: () => tdb.ping(), logger: silentLogger });
    const owner = freshOwner();
    for (let i = 0; i < 2; i++) await apply(app, op(owner, "CREDIT_ADD"));

    const channel = new EventEmitter();
    const relay = relayOfPrimary(
      { db: tdb.db, eventsUrl: "nats://127.0.0.1:4222", logger: silentLogger },
      channel,
    );
    onTestFinished(() => relay.stop());
    // Nothing was delivered: both events are pending, read from the database by the worker itself.
    await until(() => relay.state().pending === 2);
    expect(relay.state()).toMatchObject({ role: "standby", broker: "nats", broker_connected: false });

    channel.emit("message", { somethingElse: true });
    expect(relay.state().role).toBe("standby");

    const sent = primaryState();
    channel.emit("message", { ledgerRelayState: sent });
    const seen = relay.state();
    expect(seen).toMatchObject({ role: "active", broker_connected: true, pending: 3 });
    expect(seen.oldest_pending_at).toBe(sent.oldest_pending_at);
    expect(seen.oldest_pending_age_ms).toBeGreaterThanOrEqual(60_000);

    channel.emit("message", {
      ledgerRelayState: primaryState({ role: "standby", pending: 0, oldest_pending_at: null }),
    });
    expect(relay.state()).toMatchObject({ role: "standby", pending: 0, oldest_pending_age_ms: null });

    await relay.stop();
    expect(channel.listenerCount("message")).toBe(0);
  });
});

describe("the primary sending its relay's state", () => {
  it("sends at once and every second to the workers whose channel is open", async () => {
    let state = primaryState();
    const relay: Relay = { state: () => state, stop: async () => {} };
    const open: RelayState[] = [];
    const closed: RelayState[] = [];
    const receiver = (into: RelayState[], connected: boolean): StateReceiver => ({
      isConnected: () => connected,
      send: (m) => into.push(m.ledgerRelayState),
    });
    const stop = broadcastRelayState(relay, () => [receiver(open, true), receiver(closed, false)]);
    onTestFinished(stop);
    expect(open).toEqual([state]);
    state = primaryState({ pending: 0 });
    await until(() => open.length === 2, 3_000);
    expect(open[1]).toEqual(state);
    stop();
    const sent = open.length;
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    expect(open.length).toBe(sent);
    expect(closed).toEqual([]);
  });
});
