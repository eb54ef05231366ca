// /metrics of a server of several worker processes (LEDGER_WORKERS > 1): the workers share the port, so
// a scrape reaches one of them at random, and each counts only what it served. The worker that gets the
// scrape asks its primary over the cluster's IPC channel; the primary gathers every worker's registry and
// sums it with prom-client's AggregatorRegistry.clusterMetrics() (lib/cluster.js: the primary asks each
// worker for its getMetricsAsJSON() and aggregates them), adds its own metrics (the relay, which runs in
// the primary) once, and answers the worker, which answers the scrape.
import cluster, { type Worker } from "node:cluster";
import type { Logger } from "pino";
import { AggregatorRegistry, type Registry } from "prom-client";
import { LedgerMetrics } from "../http/metrics.js";

/** Longest a worker waits for its primary's answer (clusterMetrics gives up on a silent worker at 5 s). */
export const CLUSTER_SCRAPE_TIMEOUT_MS = 10_000;

/** The messages' keys, so each side tells them from any other message (prom-client's, the relay's). */
const SCRAPE_KEY = "ledgerMetricsScrape";
const SCRAPED_KEY = "ledgerMetricsScraped";

interface ScrapeMessage {
  [SCRAPE_KEY]: number;
}

interface ScrapedMessage {
  [SCRAPED_KEY]: { id: number; text: string } | { id: number; error: string };
}

function isScrape(m: unknown): m is ScrapeMessage {
  return (
    typeof m === "object" && m !== null && typeof (m as Record<string, unknown>)[SCRAPE_KEY] === "number"
  );
}

function isScraped(m: unknown): m is ScrapedMessage {
  return typeof m === "object" && m !== null && SCRAPED_KEY in m;
}

/** A worker's line to its primary: the process itself, or a test's stand-in. */
export interface PrimaryChannel {
  on(event: "message", listener: (m: unknown) => void): unknown;
  send?: ((message: ScrapeMessage) => unknown) | undefined;
}

/**
 * A worker's metrics: its registry is the one prom-client's cluster support hands the primary, and a
 * scrape answers the primary's sum over every worker. Made first thing at a worker's boot: until it
 * exists, the worker does not answer the primary, whose scrapes then wait for it (5 s at most).
 * `reportsRelay`: false where the primary runs the relay (it reports it; see LedgerMetrics).
 */
export function workerMetrics(
  opts: { reportsRelay: boolean },
  channel: PrimaryChannel = process,
): LedgerMetrics {
  let nextId = 0;
  const waiting = new Map<number, { resolve: (text: string) => void; reject: (error: Error) => void }>();
  channel.on("message", (m) => {
    if (!isScraped(m)) return;
    const answer = m[SCRAPED_KEY];
    const pending = waiting.get(answer.id);
    waiting.delete(answer.id);
    if ("text" in answer) pending?.resolve(answer.text);
    else pending?.reject(new Error(`the primary could not gather the workers' metrics: ${answer.error}`));
  });
  const scrape = () =>
    new Promise<string>((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => {
        waiting.delete(id);
        reject(new Error(`the primary did not answer a scrape within ${CLUSTER_SCRAPE_TIMEOUT_MS} ms`));
      }, CLUSTER_SCRAPE_TIMEOUT_MS);
      waiting.set(id, {
        resolve: (text) => {
          clearTimeout(timer);
          resolve(text);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      if (!channel.send) {
        waiting.get(id)?.reject(new Error("this process has no primary to ask (no IPC channel)"));
        return;
      }
      channel.send({ [SCRAPE_KEY]: id });
    });
  const metrics = new LedgerMetrics({ scrape, reportsRelay: opts.reportsRelay });
  AggregatorRegistry.setRegistries(metrics.registry);
  // Its constructor is what makes a worker answer the primary's requests for its metrics.
  new AggregatorRegistry();
  return metrics;
}

/**
 * The primary's side: answers each worker's scrape with every worker's metrics summed, then `own` (the
 * primary's relay). Returns the function that stops answering.
 */
export function answerClusterScrapes(own: Registry, logger: Logger): () => void {
  const aggregator = new AggregatorRegistry();
  const reply = (worker: Worker, message: ScrapedMessage) => {
    // A worker that is exiting has closed its channel; its scrape is not answered.
    if (worker.isConnected()) worker.send(message);
  };
  const listener = (worker: Worker, m: unknown) => {
    if (!isScrape(m)) return;
    const id = m[SCRAPE_KEY];
    Promise.all([aggregator.clusterMetrics(), own.metrics()]).then(
      (texts) => {
        const text = texts.filter((t) => t.trim() !== "").join("\n");
        reply(worker, { [SCRAPED_KEY]: { id, text } });
      },
      (error: unknown) => {
        logger.warn({ err: error }, "metrics: could not gather the workers' metrics");
        reply(worker, {
          [SCRAPED_KEY]: { id, error: error instanceof Error ? error.message : String(error) },
        });
      },
    );
  };
  cluster.on("message", listener);
  return () => cluster.off("message", listener);
}
