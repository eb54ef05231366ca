// The session lives in one cookie, sealed with AES-256-GCM under a key derived from CONSOLE_SECRET: the
// browser holds the API key but can neither read nor alter it (and nor can a script: HttpOnly). CSRF
// tokens are an HMAC of the session's random id under a second derived key, so they need no storage and
// die with the session.
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
} from "node:crypto";
import { z } from "zod";

export const SESSION_COOKIE = "console_session";
/** A session ends this long after sign-in, whatever happens in between: a support shift. */
export const SESSION_MAX_AGE_S = 12 * 3600;
/** Longest sealed cookie accepted (an API key and a few scopes fit well under it). */
const SEALED_LENGTH_MAX = 2_000;

export const APP_NAMES = ["app1", "app2"] as const;
export type AppName = (typeof APP_NAMES)[number];

const sessionSchema = z.object({
  v: z.literal(1),
  /** Random, per sign-in: what the CSRF token is bound to. */
  sid: z.string().min(16).max(64),
  /** Milliseconds since the epoch. */
  issuedAt: z.number().int(),
  auth: z.discriminatedUnion("mode", [
    z.object({ mode: z.literal("off") }),
    z.object({
      mode: z.literal("required"),
      apiKey: z.string().min(1).max(200),
      app: z.enum(APP_NAMES),
      keyId: z.string().max(64),
      scopes: z.array(z.string().max(32)).max(16),
      name: z.string().max(200).nullable(),
    }),
  ]),
});

export type Session = z.infer<typeof sessionSchema>;
export type SessionAuth = Session["auth"];

export interface Sealer {
  seal(session: Session): string;
  /** The session, or undefined when the cookie is absent, forged, from another secret, or too old. */
  open(sealed: string | undefined, nowMs: number): Session | undefined;
  csrfToken(session: Session): string;
  csrfValid(session: Session, token: string | undefined): boolean;
  /** Signs a notice for the page after an action, so a link cannot put words in the console's mouth. */
  noticeSig(session: Session, notice: string): string;
  noticeValid(session: Session, notice: string, sig: string | undefined): boolean;
}

export function newSession(auth: SessionAuth, nowMs: number): Session {
  return { v: 1, sid: randomBytes(18).toString("base64url"), issuedAt: nowMs, auth };
}

export function createSealer(secret: string): Sealer {
  const derive = (info: string) => Buffer.from(hkdfSync("sha256", secret, "ledger-console", info, 32));
  const sealKey = derive("session seal v1");
  const csrfKey = derive("csrf v1");
  const noticeKey = derive("notice v1");
  const csrfToken = (session: Session) =>
    createHmac("sha256", csrfKey).update(session.sid).digest("base64url");
  const noticeSig = (session: Session, notice: string) =>
    createHmac("sha256", noticeKey).update(`${session.sid}\n${notice}`).digest("base64url");
  const same = (a: string, b: string | undefined) => {
    if (b === undefined) return false;
    const x = Buffer.from(a);
    const y = Buffer.from(b);
    return x.length === y.length && timingSafeEqual(x, y);
  };
  return {
    seal(session) {
      const iv = randomBytes(12);
      const cipher = createCipheriv("aes-256-gcm", sealKey, iv);
      const body = Buffer.concat([cipher.update(JSON.stringify(session), "utf8"), cipher.final()]);
      return [iv, cipher.getAuthTag(), body].map((b) => b.toString("base64url")).join(".");
    },
    open(sealed, nowMs) {
      if (sealed === undefined || sealed.length > SEALED_LENGTH_MAX) return undefined;
      const [iv, tag, body, ...rest] = sealed.split(".").map((p) => Buffer.from(p, "base64url"));
      if (!iv || !tag || !body || rest.length > 0 || iv.length !== 12 || tag.length !== 16) return undefined;
      let json: unknown;
      try {
        const decipher = createDecipheriv("aes-256-gcm", sealKey, iv);
        decipher.setAuthTag(tag);
        json = JSON.parse(Buffer.concat([decipher.update(body), decipher.final()]).toString("utf8"));
      } catch {
        return undefined;
      }
      const parsed = sessionSchema.safeParse(json);
      if (!parsed.success) return undefined;
      const age = nowMs - parsed.data.issuedAt;
      if (age < 0 || age > SESSION_MAX_AGE_S * 1000) return undefined;
      return parsed.data;
    },
    csrfToken,
    csrfValid: (session, token) => same(csrfToken(session), token),
    noticeSig,
    noticeValid: (session, notice, sig) => same(noticeSig(session, notice), sig),
  };
}

/** A secret for one process, when CONSOLE_SECRET is not set (development). */
export function randomSecret(): string {
  return randomBytes(32).toString("base64url");
}

/** Whether the session may act (reverse, release, suspend, reinstate): an admin key, or no auth at all. */
export function mayAct(auth: SessionAuth): boolean {
  return auth.mode === "off" || auth.scopes.includes("admin");
}

/** Releasing a hold is a `write` route of the ledger, not an `admin` one. */
export function mayRelease(auth: SessionAuth): boolean {
  return auth.mode === "off" || (auth.scopes.includes("admin") && auth.scopes.includes("write"));
}
