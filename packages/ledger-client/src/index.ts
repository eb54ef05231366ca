// @ledger/client: a typed client for a ledger app's HTTP API. Retries 503s and failed connections with
// the same nonce; answers the ledger's problems as LedgerApiError with a typed `code`.
export {
  createLedgerClient,
  DELAY_MS_MAX,
  TIMEOUT_MS_DEFAULT,
  type App1Client,
  type App2Client,
  type CallOptions,
  type LedgerClient,
  type LedgerClientOptions,
} from "./client.js";
export {
  isLedgerApiError,
  isProblemCode,
  LedgerApiError,
  LedgerClientError,
  LedgerNetworkError,
  LedgerResponseError,
  PROBLEM_CODES,
  type Problem,
  type ProblemCode,
} from "./errors.js";
export { ATTEMPTS_MAX, RETRY_DEFAULTS, type Delay, type FetchLike, type RetryOptions } from "./retry.js";
export type * from "./types.js";
