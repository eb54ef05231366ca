// API keys in the database: create (the secret's hash only), list, revoke, find one for a request, and
// record when keys were last used. The secret itself is never stored, logged or returned by a list.
import { generateApiKey, type Scope } from "../domain/api-keys.js";
import type { SqlRunner } from "./sql-client.js";

export interface ApiKeyRecord {
  id: string;
  app: string;
  name: string | null;
  scopes: Scope[];
  /** Requests per second; null: the server's LEDGER_RATE_LIMIT_PER_S. */
  rate: number | null;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

/** What authentication needs of a key: its record and the hash to compare the secret with. */
export interface StoredApiKey extends ApiKeyRecord {
  secretSha256: string;
}

const COLUMNS = `id, app, name, scopes, rate_per_s, secret_sha256,
  to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as created_at,
  to_char(last_used_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as last_used_at,
  to_char(revoked_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as revoked_at`;

interface RawKey {
  id: string;
  app: string;
  name: string | null;
  scopes: string[] | string;
  rate_per_s: number | null;
  secret_sha256: string;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

/** text[] comes back as an array from postgres.js and as "{a,b}" from some PGlite paths. */
function scopesOf(raw: string[] | string): Scope[] {
  const list = Array.isArray(raw)
    ? raw
    : raw
        .replace(/^\{|\}$/g, "")
        .split(",")
        .filter(Boolean);
  return list as Scope[];
}

function toStored(r: RawKey): StoredApiKey {
  return {
    id: r.id,
    app: r.app,
    name: r.name,
    scopes: scopesOf(r.scopes),
    rate: r.rate_per_s,
    created_at: r.created_at,
    last_used_at: r.last_used_at,
    revoked_at: r.revoked_at,
    secretSha256: r.secret_sha256,
  };
}

function withoutSecret(k: StoredApiKey): ApiKeyRecord {
  const { secretSha256: _hash, ...record } = k;
  return record;
}

export interface NewApiKey {
  app: string;
  scopes: readonly Scope[];
  name?: string | undefined;
  rate?: number | undefined;
}

/** Creates a key; the returned `key` is the only time its secret exists outside the caller's hands. */
export async function createApiKey(db: SqlRunner, input: NewApiKey): Promise<ApiKeyRecord & { key: string }> {
  const { id, key, secretSha256 } = generateApiKey();
  const scopes = [...new Set(input.scopes)];
  const [rows] = await db.run([
    {
      text: `insert into ledger_api_keys (id, app, name, scopes, rate_per_s, secret_sha256)
        values ($1, $2, $3, $4::text[], $5, $6) returning ${COLUMNS}`,
      params: [id, input.app, input.name ?? null, `{${scopes.join(",")}}`, input.rate ?? null, secretSha256],
    },
  ]);
  const row = (rows ?? [])[0] as unknown as RawKey;
  return { ...withoutSecret(toStored(row)), key };
}

/** Every key (revoked ones too), newest first; never a secret or its hash. */
export async function listApiKeys(db: SqlRunner, app?: string): Promise<ApiKeyRecord[]> {
  const [rows] = await db.run([
    app === undefined
      ? { text: `select ${COLUMNS} from ledger_api_keys order by created_at desc, id`, params: [] }
      : {
          text: `select ${COLUMNS} from ledger_api_keys where app = $1 order by created_at desc, id`,
          params: [app],
        },
  ]);
  return ((rows ?? []) as unknown as RawKey[]).map((r) => withoutSecret(toStored(r)));
}

/**
 * Revokes a key: "revoked" the first time, "already" when it was, "unknown" when there is no such key.
 * Every process refuses it once its cache of keys expires (at most AUTH_CACHE_TTL_MS).
 */
export async function revokeApiKey(db: SqlRunner, id: string): Promise<"revoked" | "already" | "unknown"> {
  const [rows] = await db.run([
    {
      text: `with target as (select id, revoked_at from ledger_api_keys where id = $1),
        done as (update ledger_api_keys k set revoked_at = now()
          from target where k.id = target.id and target.revoked_at is null returning k.id)
        select (select count(*) from target)::int as found, (select count(*) from done)::int as revoked`,
      params: [id],
    },
  ]);
  const row = (rows ?? [])[0] as unknown as { found: number; revoked: number } | undefined;
  if (!row || row.found === 0) return "unknown";
  return row.revoked === 1 ? "revoked" : "already";
}

/** The key with this id, revoked or not; undefined if there is none. */
export async function findApiKey(db: SqlRunner, id: string): Promise<StoredApiKey | undefined> {
  const [rows] = await db.run([
    { text: `select ${COLUMNS} from ledger_api_keys where id = $1`, params: [id] },
  ]);
  const row = (rows ?? [])[0] as unknown as RawKey | undefined;
  return row ? toStored(row) : undefined;
}

/** Records that these keys were used (now); one statement for all of them. */
export async function touchApiKeys(db: SqlRunner, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await db.run([
    {
      text: `update ledger_api_keys set last_used_at = now() where id = any($1::text[])`,
      params: [`{${ids.join(",")}}`],
    },
  ]);
}
