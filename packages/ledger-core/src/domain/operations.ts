// Operation catalogs. Every app offers the shared operations unchanged, plus its own. The rule is
// enforced twice: by the type of defineCatalog (a catalog that drops or changes a shared operation
// does not compile) and at run time (for catalogs built from data, or forced past the compiler).
import { CatalogError } from "./errors.js";
import { RESERVED_OPERATIONS } from "./ledger-operations.js";
import { AMOUNT_MAX, OPERATION_NAME_LENGTH_MAX } from "./limits.js";

/** "once": at most one per owner, ever. "daily": at most one per owner per UTC calendar day. */
export type OperationLimit = "once" | "daily";

/** Moves the same signed amount every time; 0 records an event without moving credits. */
export interface FixedOperation extends OperationExtras {
  readonly kind: "fixed";
  readonly amount: number;
}

/** Moves an amount the caller chooses, within [min, max], in one direction. */
export interface VariableOperation extends OperationExtras {
  readonly kind: "variable";
  readonly direction: "credit" | "debit";
  readonly min: number;
  readonly max: number;
}

export type OperationDefinition = FixedOperation | VariableOperation;
export type OperationMap = Readonly<Record<string, OperationDefinition>>;

/** What an operation may carry besides its amount. */
export interface OperationExtras {
  readonly limit?: OperationLimit;
  readonly description?: string;
  /** A credit whose request may say when its credits expire (`expires_at`). */
  readonly allowsExpiresAt?: boolean;
  /** A credit whose credits expire this many seconds after they are granted. */
  readonly expiresAfterS?: number;
}

type ExtraKey = keyof OperationExtras;

/** Longest an expiry may reach into the future: ten calendar years (UTC). */
export const EXPIRY_HORIZON_YEARS = 10;

/** The latest instant an expiry may name, seen from `now`. */
export function expiryHorizon(now: Date): Date {
  const d = new Date(now);
  d.setUTCFullYear(d.getUTCFullYear() + EXPIRY_HORIZON_YEARS);
  return d;
}

/** The longest expiresAfterS a catalog may declare: ten years of 365 days. */
const EXPIRES_AFTER_S_MAX = EXPIRY_HORIZON_YEARS * 365 * 86_400;

/** A fixed-amount operation; the literal amount and extras are kept in the type, so changing one is a type error. */
export function fixed<const A extends number, const E extends OperationExtras = Record<never, never>>(
  amount: A,
  extras?: E,
  // NoInfer: the extras come from the argument only, never from where the result is used; otherwise
  // `SIGNUP_CREDIT: fixed(3)` would borrow `limit: "once"` from the expected type and compile.
): { readonly kind: "fixed"; readonly amount: A } & Readonly<NoInfer<E>> {
  return { kind: "fixed", amount, ...extras } as { readonly kind: "fixed"; readonly amount: A } & Readonly<E>;
}

/** A variable-amount operation: the caller sends an amount within [min, max]; the direction gives its sign. */
export function variable<
  const S extends { direction: "credit" | "debit"; min: number; max: number } & OperationExtras,
>(spec: S): { readonly kind: "variable" } & Readonly<NoInfer<S>> {
  return { kind: "variable", ...spec };
}

/** The operations every app must offer, exactly as defined here (seed: LEDGER_OPERATION_CONFIG). */
export const sharedOperations = {
  DAILY_REWARD: fixed(1, {
    limit: "daily",
    description: "Daily reward: +1 credit, once per owner per UTC day",
  }),
  SIGNUP_CREDIT: fixed(3, { limit: "once", description: "Sign-up credit: +3 credits, once per owner" }),
  CREDIT_SPEND: fixed(-1, { description: "Spend one credit" }),
  CREDIT_ADD: fixed(10, {
    allowsExpiresAt: true,
    description: "Add ten credits; the request may say when they expire (expires_at)",
  }),
} as const;

export type SharedOperations = typeof sharedOperations;
export type SharedOperationName = keyof SharedOperations;

/** What the service needs of a catalog, whatever the app's own operations are. */
export interface OperationCatalogView {
  readonly names: readonly string[];
  get(name: string): OperationDefinition | undefined;
}

export interface OperationCatalog<T extends OperationMap = OperationMap> extends OperationCatalogView {
  readonly operations: T;
  readonly names: readonly (keyof T & string)[];
}

const NAME_PATTERN = /^[A-Z][A-Z0-9_]*$/;

/**
 * Builds an app's catalog: the shared operations, unchanged, plus the app's own.
 *
 *   defineCatalog({ ...sharedOperations, CONTENT_CREATION: fixed(-5) })   // compiles
 *   defineCatalog({ CONTENT_CREATION: fixed(-5) })                        // does not: shared ones missing
 *
 * @throws CatalogError when a shared operation is missing or changed, or a definition is invalid.
 */
/**
 * Each shared operation exactly as defined: its own fields with their literal values, and none of the
 * extras it does not have (so adding an expiry to DAILY_REWARD does not compile either).
 */
type SharedExactly = {
  readonly [K in keyof SharedOperations]: SharedOperations[K] & {
    readonly [X in Exclude<ExtraKey, keyof SharedOperations[K]>]?: never;
  };
};

export function defineCatalog<const T extends SharedExactly & OperationMap>(
  operations: T,
): OperationCatalog<T> {
  const problems: string[] = [];
  for (const [name, shared] of Object.entries(sharedOperations)) {
    const given: unknown = (operations as OperationMap)[name];
    if (given === undefined) problems.push(`shared operation ${name} is missing`);
    else if (!sameDefinition(given, shared)) problems.push(`shared operation ${name} is changed`);
  }
  for (const [name, def] of Object.entries(operations as OperationMap)) {
    problems.push(...definitionProblems(name, def));
  }
  if (problems.length > 0) {
    throw new CatalogError(`Invalid operation catalog: ${problems.join("; ")}`, { problems });
  }
  const frozen = Object.freeze(
    Object.fromEntries(Object.entries(operations).map(([k, v]) => [k, Object.freeze({ ...v })])),
  ) as T;
  const names = Object.freeze(Object.keys(frozen)) as readonly (keyof T & string)[];
  return Object.freeze({
    operations: frozen,
    names,
    get: (name: string) => (Object.hasOwn(frozen, name) ? (frozen as OperationMap)[name] : undefined),
  });
}

function definitionProblems(name: string, def: unknown): string[] {
  const problems: string[] = [];
  if (!NAME_PATTERN.test(name) || name.length > OPERATION_NAME_LENGTH_MAX) {
    problems.push(`${name}: names are SCREAMING_SNAKE_CASE, at most ${OPERATION_NAME_LENGTH_MAX} characters`);
  }
  if (typeof def !== "object" || def === null) return [...problems, `${name}: not a definition`];
  const d = def as Partial<FixedOperation> & Partial<VariableOperation> & { kind?: unknown; limit?: unknown };
  if (RESERVED_OPERATIONS.includes(name)) problems.push(`${name}: the ledger writes this operation itself`);
  if (d.limit !== undefined && d.limit !== "once" && d.limit !== "daily") {
    problems.push(`${name}: limit must be "once" or "daily"`);
  }
  if (d.kind === "fixed") {
    if (!isAmount(d.amount, true)) problems.push(`${name}: amount must be an integer in ±${AMOUNT_MAX}`);
  } else if (d.kind === "variable") {
    if (d.direction !== "credit" && d.direction !== "debit") {
      problems.push(`${name}: direction must be "credit" or "debit"`);
    }
    if (!isAmount(d.min, false) || !isAmount(d.max, false) || d.min < 1 || d.max < d.min) {
      problems.push(`${name}: bounds must be integers with 1 <= min <= max <= ${AMOUNT_MAX}`);
    }
  } else {
    problems.push(`${name}: kind must be "fixed" or "variable"`);
  }
  const credits =
    (d.kind === "fixed" && typeof d.amount === "number" && d.amount > 0) ||
    (d.kind === "variable" && d.direction === "credit");
  if (d.allowsExpiresAt !== undefined && typeof d.allowsExpiresAt !== "boolean") {
    problems.push(`${name}: allowsExpiresAt must be a boolean`);
  }
  if (
    d.expiresAfterS !== undefined &&
    (!Number.isSafeInteger(d.expiresAfterS) || d.expiresAfterS < 1 || d.expiresAfterS > EXPIRES_AFTER_S_MAX)
  ) {
    problems.push(`${name}: expiresAfterS must be a whole number of seconds from 1 to ten years`);
  }
  if ((d.allowsExpiresAt === true || d.expiresAfterS !== undefined) && !credits) {
    problems.push(`${name}: only an operation that grants credits can make them expire`);
  }
  if (d.allowsExpiresAt === true && d.expiresAfterS !== undefined) {
    problems.push(
      `${name}: an operation either lets the request say expires_at or sets its own expiry, not both`,
    );
  }
  return problems;
}

function isAmount(value: unknown, signed: boolean): value is number {
  return (
    typeof value === "number" &&
    Number.isSafeInteger(value) &&
    Math.abs(value) <= AMOUNT_MAX &&
    (signed || value >= 0)
  );
}

function sameDefinition(a: unknown, b: OperationDefinition): boolean {
  if (typeof a !== "object" || a === null) return false;
  const ka = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const kb = Object.keys(b).filter((k) => (b as unknown as Record<string, unknown>)[k] !== undefined);
  return (
    ka.length === kb.length &&
    kb.every((k) => (a as Record<string, unknown>)[k] === (b as unknown as Record<string, unknown>)[k])
  );
}
