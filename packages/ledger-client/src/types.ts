// The client's types, read off an app's generated `paths` (src/generated): what each route takes and
// answers. Every app serves the same routes; their documents differ only in the operations they name,
// so one set of helpers serves all, and LedgerClient<App1Paths> accepts only app1's operation names.
import type { paths as App1Paths } from "./generated/app1.js";
import type { paths as App2Paths } from "./generated/app2.js";

export type { App1Paths, App2Paths };

/** The paths of an app this client has types for. */
export type LedgerPaths = App1Paths | App2Paths;

type Method = "get" | "post";

/** The operation object of `method` on `path`. */
type OperationOf<P, Path extends keyof P, M extends Method> = P[Path] extends { [K in M]: infer O }
  ? O
  : never;

/** The JSON body a route takes. */
export type RequestBodyOf<P, Path extends keyof P, M extends Method = "post"> =
  OperationOf<P, Path, M> extends { requestBody: { content: { "application/json": infer B } } } ? B : never;

/** The JSON body of a route's 200 and 201 answers. */
export type ResponseOf<P, Path extends keyof P, M extends Method> =
  OperationOf<P, Path, M> extends { responses: infer R }
    ? {
        [S in keyof R & (200 | 201)]: R[S] extends { content: { "application/json": infer B } } ? B : never;
      }[keyof R & (200 | 201)]
    : never;

/** A route's query parameters. */
export type QueryOf<P, Path extends keyof P, M extends Method = "get"> =
  OperationOf<P, Path, M> extends { parameters: { query?: infer Q } } ? NonNullable<Q> : never;

/** A write's body as the caller gives it: `nonce` may be left out (the client makes one up, once per call). */
export type WriteInput<B> = B extends unknown ? Omit<B, "nonce"> & { nonce?: string } : never;

/** The operation names an app's POST /ledger accepts. */
export type OperationName<P extends LedgerPaths> =
  RequestBodyOf<P, "/ledger"> extends { operation: infer O } ? O : never;

// Each route's shapes, for any app's paths.
export type PostInput<P extends LedgerPaths> = WriteInput<RequestBodyOf<P, "/ledger">>;
export type PostResult<P extends LedgerPaths> = ResponseOf<P, "/ledger", "post">;
export type BatchInput<P extends LedgerPaths> = Omit<RequestBodyOf<P, "/ledger/batch">, "operations"> & {
  operations: PostInput<P>[];
};
export type BatchResult<P extends LedgerPaths> = ResponseOf<P, "/ledger/batch", "post">;
type BalanceAnswer<P extends LedgerPaths> = ResponseOf<P, "/ledger/{owner_id}", "get">;
export type Balance<P extends LedgerPaths> = Exclude<BalanceAnswer<P>, { at: string }>;
export type BalanceAt<P extends LedgerPaths> = Extract<BalanceAnswer<P>, { at: string }>;
export type EntriesQuery<P extends LedgerPaths> = QueryOf<P, "/ledger/{owner_id}/entries">;
export type EntryPage<P extends LedgerPaths> = ResponseOf<P, "/ledger/{owner_id}/entries", "get">;
export type Entry<P extends LedgerPaths> = EntryPage<P>["entries"][number];
export type SummaryQuery<P extends LedgerPaths> = QueryOf<P, "/ledger/{owner_id}/summary">;
export type EntrySummary<P extends LedgerPaths> = ResponseOf<P, "/ledger/{owner_id}/summary", "get">;
export type CurrentKey<P extends LedgerPaths> = ResponseOf<P, "/api-keys/current", "get">;
export type PlaceHoldInput<P extends LedgerPaths> = WriteInput<RequestBodyOf<P, "/ledger/holds">>;
export type HoldResult<P extends LedgerPaths> = ResponseOf<P, "/ledger/holds", "post">;
export type CaptureInput<P extends LedgerPaths> = WriteInput<
  RequestBodyOf<P, "/ledger/holds/{hold_id}/capture">
>;
export type CaptureResult<P extends LedgerPaths> = ResponseOf<P, "/ledger/holds/{hold_id}/capture", "post">;
export type ReleaseInput<P extends LedgerPaths> = WriteInput<
  RequestBodyOf<P, "/ledger/holds/{hold_id}/release">
>;
export type ReleaseResult<P extends LedgerPaths> = ResponseOf<P, "/ledger/holds/{hold_id}/release", "post">;
export type HoldRead<P extends LedgerPaths> = ResponseOf<P, "/ledger/holds/{hold_id}", "get">;
export type Hold<P extends LedgerPaths> = HoldRead<P>["hold"];
export type HoldsQuery<P extends LedgerPaths> = QueryOf<P, "/ledger/{owner_id}/holds">;
export type HoldPage<P extends LedgerPaths> = ResponseOf<P, "/ledger/{owner_id}/holds", "get">;
export type ReversalInput<P extends LedgerPaths> = WriteInput<
  RequestBodyOf<P, "/ledger/entries/{entry_id}/reversal">
>;
export type ReversalResult<P extends LedgerPaths> = ResponseOf<
  P,
  "/ledger/entries/{entry_id}/reversal",
  "post"
>;
export type TransferInput<P extends LedgerPaths> = WriteInput<RequestBodyOf<P, "/ledger/transfers">>;
export type TransferResult<P extends LedgerPaths> = ResponseOf<P, "/ledger/transfers", "post">;
export type SuspendInput<P extends LedgerPaths> = WriteInput<
  RequestBodyOf<P, "/ledger/{owner_id}/suspension">
>;
export type SuspendResult<P extends LedgerPaths> = ResponseOf<P, "/ledger/{owner_id}/suspension", "post">;
export type ReinstateInput<P extends LedgerPaths> = WriteInput<
  RequestBodyOf<P, "/ledger/{owner_id}/reinstatement">
>;
export type ReinstateResult<P extends LedgerPaths> = ResponseOf<
  P,
  "/ledger/{owner_id}/reinstatement",
  "post"
>;
export type EventsQuery<P extends LedgerPaths> = QueryOf<P, "/ledger/events">;
export type EventPage<P extends LedgerPaths> = ResponseOf<P, "/ledger/events", "get">;
export type StreamQuery<P extends LedgerPaths> = QueryOf<P, "/ledger/{owner_id}/stream">;
