// The events settings every app reads at boot (appEnvSchema): LEDGER_EVENTS_URL must name a broker the
// relay knows, retention is whole days from 1 (default 30), the relay runs in the process unless
// LEDGER_RELAY=off, and the stream, subject prefix and exchange are names the brokers accept.
import { describe, expect, it } from "vitest";
import { appEnvSchema } from "../src/runtime/serve.js";

const schema = appEnvSchema(8000);

describe("the events settings", () => {
  it("default to no broker, 30 days of retention, the relay on, the stream LEDGER and the exchange ledger.events", () => {
    expect(schema.parse({})).toMatchObject({
      LEDGER_EVENTS_RETENTION_DAYS: 30,
      LEDGER_RELAY: "on",
      LEDGER_EVENTS_STREAM: "LEDGER",
      LEDGER_EVENTS_SUBJECT_PREFIX: "ledger",
      LEDGER_EVENTS_EXCHANGE: "ledger.events",
    });
    expect(schema.parse({}).LEDGER_EVENTS_URL).toBeUndefined();
    expect(schema.parse({ LEDGER_EVENTS_URL: "  " }).LEDGER_EVENTS_URL).toBeUndefined();
  });

  it.each([
    "nats://127.0.0.1:4222",
    "amqp://guest:guest@127.0.0.1:5672",
    "amqps://u:p@mq.internal:5671/ledger",
  ])("take %s as the broker", (url) => {
    expect(schema.parse({ LEDGER_EVENTS_URL: url }).LEDGER_EVENTS_URL).toBe(url);
  });

  it.each([
    [{ LEDGER_EVENTS_URL: "kafka://127.0.0.1:9092" }, "LEDGER_EVENTS_URL"],
    [{ LEDGER_EVENTS_URL: "127.0.0.1:4222" }, "LEDGER_EVENTS_URL"],
    [{ LEDGER_EVENTS_RETENTION_DAYS: "0" }, "LEDGER_EVENTS_RETENTION_DAYS"],
    [{ LEDGER_EVENTS_RETENTION_DAYS: "1.5" }, "LEDGER_EVENTS_RETENTION_DAYS"],
    [{ LEDGER_RELAY: "yes" }, "LEDGER_RELAY"],
    [{ LEDGER_EVENTS_STREAM: "LEDGER.MAIN" }, "LEDGER_EVENTS_STREAM"],
    [{ LEDGER_EVENTS_STREAM: "" }, "LEDGER_EVENTS_STREAM"],
    [{ LEDGER_EVENTS_SUBJECT_PREFIX: "ledger.>" }, "LEDGER_EVENTS_SUBJECT_PREFIX"],
    [{ LEDGER_EVENTS_SUBJECT_PREFIX: "ledger..a" }, "LEDGER_EVENTS_SUBJECT_PREFIX"],
    [{ LEDGER_EVENTS_EXCHANGE: "ledger events" }, "LEDGER_EVENTS_EXCHANGE"],
  ])("refuse %j, naming %s", (env, key) => {
    const result = schema.safeParse(env);
    expect(result.success).toBe(false);
    expect(result.error?.issues.map((i) => i.path.join("."))).toEqual([key]);
  });

  it("says what a broker URL must be", () => {
    const result = schema.safeParse({ LEDGER_EVENTS_URL: "http://127.0.0.1:4222" });
    expect(result.error?.issues[0]?.message).toMatch(/nats:\/\/.*amqp\(s\):\/\//);
  });
});
