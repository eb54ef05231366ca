// Every limit a caller can push against, in one place. Units go last in names.

/** Largest amount a single request may move. Far below BALANCE_MAX so one request cannot overflow. */
export const AMOUNT_MAX = 1_000_000_000;
/** No balance may pass 2^53-1, so every balance is exact as a JavaScript number and in JSON. */
export const BALANCE_MAX = Number.MAX_SAFE_INTEGER;
export const OWNER_ID_LENGTH_MAX = 128;
export const NONCE_LENGTH_MAX = 128;
export const OPERATION_NAME_LENGTH_MAX = 64;
/** Longest `reason` a write may carry (suspensions, reinstatements, reversals), in UTF-16 code units. */
export const REASON_LENGTH_MAX = 500;
export const PAGE_SIZE_DEFAULT = 50;
export const PAGE_SIZE_MAX = 200;
/** Request bodies are tiny (four fields); anything larger is refused before it is parsed. */
export const BODY_SIZE_MAX_BYTES = 16 * 1024;
/** Most operations one POST /ledger/batch may carry. */
export const BATCH_OPERATIONS_MAX = 1_000;
/**
 * A batch's body limit: BATCH_OPERATIONS_MAX items of about 1 KiB each (an item at its longest owner id,
 * nonce, operation and expiry is about 400 bytes of JSON).
 */
export const BATCH_BODY_SIZE_MAX_BYTES = 1024 * 1024;
/** Most expiry instants a balance read lists in `expiring`. */
export const EXPIRING_SUMMARY_MAX = 50;
