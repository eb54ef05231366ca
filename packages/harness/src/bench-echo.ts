// The ceiling of `pnpm bench`: the smallest Hono app on @hono/node-server, POST /echo answering JSON,
// as its own process on 127.0.0.1. What the ledger app reaches relative to it is what the ledger
// itself costs; what this reaches is the limit of HTTP and the load generator on this machine.
import { serve } from "@hono/node-server";
import { Hono } from "hono";

const port = Number(process.env.PORT);
if (!Number.isInteger(port) || port < 1 || port > 65_535) {
  process.stderr.write("bench-echo: PORT must be a port number\n");
  process.exit(2);
}

const app = new Hono();
app.post("/echo", async (c) => {
  const body: unknown = await c.req.json();
  return c.json({ ok: true, body }, 201);
});
app.get("/health", (c) => c.json({ status: "ok" }));

const server = serve({ fetch: app.fetch, port, hostname: "127.0.0.1" });
process.once("SIGTERM", () => server.close(() => process.exit(0)));
