// Throwaway databases on a real Postgres, for tests, the harness's runs and the bench: each gets a
// fresh name, and is dropped (even with connections still open) when done. No vitest here, so plain
// node scripts can use it.
import { randomBytes } from "node:crypto";
import postgres from "postgres";

/** The same server and credentials as url, another database. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

async function onAdmin(adminUrl: string, statement: string): Promise<void> {
  const sql = postgres(adminUrl, { max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    await sql.unsafe(statement);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** Creates an empty database with a fresh name on the server of adminUrl; returns its name and URL. */
export async function createDatabase(
  adminUrl: string,
  prefix: string,
): Promise<{ name: string; url: string }> {
  const name = `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString("hex")}`;
  await onAdmin(adminUrl, `create database "${name}"`);
  return { name, url: withDatabase(adminUrl, name) };
}

export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  await onAdmin(adminUrl, `drop database if exists "${name}" with (force)`);
}
