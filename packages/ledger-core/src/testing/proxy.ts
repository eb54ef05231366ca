// A TCP proxy in front of Postgres that a test can take down and bring back, so "the database went
// away" can be tested without stopping the Postgres that every other test shares.
import net from "node:net";

export type OutageMode =
  /** Like a stopped server: open connections are reset, new ones refused. */
  | "refuse"
  /** Like a frozen server or a dead network: connections stay open but nothing comes back. */
  | "blackhole";

export interface TcpProxy {
  readonly port: number;
  /** The given postgres:// URL, pointed at the proxy. */
  url(target: string): string;
  down(mode: OutageMode): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const pairs = new Set<{ client: net.Socket; upstream: net.Socket }>();
  let mode: OutageMode | "up" = "up";

  const server = net.createServer((client) => {
    if (mode === "blackhole") {
      const upstream = new net.Socket();
      client.on("error", () => {});
      upstream.on("error", () => {});
      pairs.add({ client, upstream });
      return; // accepted, never answered
    }
    const upstream = net.connect(targetPort, targetHost);
    const pair = { client, upstream };
    pairs.add(pair);
    client.pipe(upstream).pipe(client);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });

  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
  await listen(0);
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("proxy has no TCP address");
  const port = address.port;

  return {
    port,
    url(target: string) {
      const u = new URL(target);
      u.hostname = "127.0.0.1";
      u.port = String(port);
      return u.toString();
    },
    async down(next: OutageMode) {
      mode = next;
      if (next === "refuse") {
        // close() stops accepting at once but calls back only when the last connection is gone.
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const { client, upstream } of pairs) {
          if (!client.destroyed) client.resetAndDestroy();
          upstream.destroy();
        }
        pairs.clear();
        await closed;
      } else {
        for (const { client, upstream } of pairs) {
          client.unpipe();
          upstream.unpipe();
          client.pause();
          upstream.pause();
        }
      }
    },
    async up() {
      const was = mode;
      mode = "up";
      if (was === "refuse") await listen(port);
      for (const pair of pairs) {
        const { client, upstream } = pair;
        if (upstream.connecting || upstream.readyState === "open") {
          client.pipe(upstream).pipe(client);
          client.resume();
          upstream.resume();
        } else {
          client.destroy(); // a connection accepted while blackholed never reached Postgres
          pairs.delete(pair);
        }
      }
    },
    async close() {
      for (const { client, upstream } of pairs) {
        client.destroy();
        upstream.destroy();
      }
      pairs.clear();
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
