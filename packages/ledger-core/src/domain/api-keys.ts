// An API key: `lgr_<id>_<secret>`. The prefix makes a leaked key recognisable (secret scanners, logs);
// the id (16 hex digits) names the key in lists, in entries (`actor`) and in revocation; the secret is
// 32 random bytes (256 bits), base64url. Only the secret's SHA-256 is stored: a key carries far more
// than 128 bits of entropy, so a slow password hash would add nothing but latency to every request.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/** What a key may do; which routes each opens is in http/scopes.ts. */
export const SCOPES = ["read", "write", "admin", "events"] as const;
export type Scope = (typeof SCOPES)[number];

export const API_KEY_PREFIX = "lgr_";
const KEY_PATTERN = /^lgr_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
/** Longest Authorization value looked at: a key is 64 characters; anything much longer is not one. */
export const AUTHORIZATION_LENGTH_MAX = 256;

export interface ParsedApiKey {
  id: string;
  secret: string;
}

/** A new key: its id, the secret to show once, and the hash to store. */
export function generateApiKey(): { id: string; key: string; secretSha256: string } {
  const id = randomBytes(8).toString("hex");
  const secret = randomBytes(32).toString("base64url");
  return { id, key: `${API_KEY_PREFIX}${id}_${secret}`, secretSha256: sha256Hex(secret) };
}

/** The key in a string, if it has a key's shape (nothing is looked up). */
export function parseApiKey(value: string): ParsedApiKey | undefined {
  const m = KEY_PATTERN.exec(value);
  return m ? { id: m[1] as string, secret: m[2] as string } : undefined; // both groups are in the pattern
}

/** Whether `secret` is the one whose hash is stored, in time that does not depend on where they differ. */
export function secretMatches(secret: string, storedSha256: string): boolean {
  const given = Buffer.from(sha256Hex(secret), "hex");
  const stored = Buffer.from(storedSha256, "hex");
  return given.length === stored.length && timingSafeEqual(given, stored);
}

function sha256Hex(s: string): string {
  return createHash("sha256").update(s).digest("hex");
}
