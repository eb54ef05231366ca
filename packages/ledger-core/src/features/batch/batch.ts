// Many posts in one request: each item is the body of POST /ledger, checked as POST /ledger checks it,
// and every item that passes goes into group commit together, as one unit (one transaction). Each item
// is answered exactly as POST /ledger would have answered it alone (201, 200 for a replay, or its
// problem); with `atomic`, every item is written or none is.
import { DatabaseUnavailableError, LedgerError } from "../../domain/errors.js";
import { postOperationInputSchema } from "../../domain/input.js";
import type { PostResult } from "../../domain/types.js";
import type { Command, ErrorList } from "../../engine/command.js";
import { GroupRefused } from "../../engine/group-commit.js";
import { validationProblem } from "../../http/contract.js";
import { problemOfError, STATUS_BY_CODE, type Problem } from "../../http/problem.js";
import type { LedgerService } from "../../service/ledger-service.js";
import { POST_OPERATION_ERRORS, postOperation, validatePost } from "../operations/command.js";
import { postResultBody } from "../operations/routes.js";

/**
 * What an atomic batch can be refused with: any item's refusal (those of POST /ledger, in its order of
 * precedence), named by the item's index. Items are checked first, all of them, before any is decided:
 * the first item that fails a check needing no database refuses the batch; then the first refused by
 * the ledger does.
 */
export const ATOMIC_BATCH_ERRORS: ErrorList = POST_OPERATION_ERRORS;

/** One item's answer: the status and body POST /ledger would have answered it with (no request id). */
export interface ItemResult {
  status: number;
  body: ReturnType<typeof postResultBody> | Problem;
}

export type BatchAnswer =
  | { kind: "results"; results: ItemResult[] }
  /** An atomic batch that wrote nothing: the first refusal, and the index of the item it refused. */
  | { kind: "refused"; index: number; problem: Problem };

type Prepared = { ok: true; command: Command<PostResult> } | { ok: false; problem: Problem };

/** Each item checked as POST /ledger checks a body: its schema, then the app's catalog. */
function prepare(service: LedgerService, item: unknown): Prepared {
  const parsed = postOperationInputSchema.safeParse(item);
  if (!parsed.success) return { ok: false, problem: validationProblem(parsed.error) };
  try {
    return { ok: true, command: postOperation(service.app, validatePost(service.catalog, parsed.data)) };
  } catch (error) {
    if (error instanceof LedgerError) return { ok: false, problem: problemOfError(error) };
    throw error;
  }
}

/** What the ledger answered a post with, as an item's result; an unknown outcome fails the whole request. */
function resultOf(settled: { ok: true; answer: unknown } | { ok: false; error: unknown }): ItemResult {
  if (settled.ok) {
    const answer = settled.answer as PostResult;
    return { status: answer.replayed ? 200 : 201, body: postResultBody(answer) };
  }
  const { error } = settled;
  // The batch was one transaction: when its outcome is unknown, or it failed in a way no item caused,
  // it is so for every item, and the request answers it as a whole (503: retry with the same nonces).
  if (!(error instanceof LedgerError) || error instanceof DatabaseUnavailableError) throw error;
  return { status: STATUS_BY_CODE[error.code], body: problemOfError(error) };
}

/**
 * Runs a batch of POST /ledger bodies.
 * @throws DatabaseUnavailableError when the outcome is unknown (for every item: they were one transaction)
 */
export async function runBatch(
  service: LedgerService,
  items: readonly unknown[],
  atomic: boolean,
): Promise<BatchAnswer> {
  const prepared = items.map((item) => prepare(service, item));
  if (atomic) {
    const index = prepared.findIndex((p) => !p.ok);
    const failed = prepared[index];
    if (failed && !failed.ok) return { kind: "refused", index, problem: failed.problem };
  }
  const commands = prepared.flatMap((p) => (p.ok ? [p.command] : []));
  const settled = await service.submitGroup(commands, atomic);
  if (atomic) {
    // Every item is a command here, so a command's index is its item's.
    const index = settled.findIndex((s) => !s.ok);
    const refused = settled[index];
    if (refused && !refused.ok) {
      const { error } = refused;
      if (error instanceof GroupRefused) {
        return { kind: "refused", index: error.index, problem: problemOfError(error.error) };
      }
      const only = resultOf(refused);
      return { kind: "refused", index, problem: only.body as Problem };
    }
  }
  let at = 0;
  const results = prepared.map((p): ItemResult => {
    if (!p.ok) return { status: p.problem.status, body: p.problem };
    const s = settled[at++];
    if (!s) throw new Error("group commit answered fewer commands than it was given");
    return resultOf(s);
  });
  return { kind: "results", results };
}
