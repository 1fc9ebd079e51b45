import { ClientConfigError } from './errors.js';

/**
 * A password, or a function that returns one (a JWT from a token service, say). The function is
 * called before every connect and reconnect, so each CONNECT carries a token that is fresh then.
 */
export type PasswordSource = string | (() => string | Promise<string>);

/**
 * When the password stops being valid: a Date or epoch milliseconds for a fixed password, or a
 * function of the password just obtained. Without it, a password that is a JWT is read for its `exp`.
 */
export type TokenExpiry = Date | number | ((password: string) => Date | number | undefined);

/** The URL without credentials, and the ones it carried (`mqtt://user:pass@host`), percent-decoded. */
export function splitUrlCredentials(url: string): { url: string; username?: string; password?: string } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // mqtt.js reports URLs it cannot use itself; nothing to take out of one that does not parse.
    return { url };
  }
  if (!parsed.username && !parsed.password) return { url };
  let username: string;
  let password: string;
  try {
    username = decodeURIComponent(parsed.username);
    password = decodeURIComponent(parsed.password);
  } catch {
    throw new ClientConfigError('the credentials in the URL are not valid percent-encoding');
  }
  const hasPassword = parsed.password !== '';
  parsed.username = '';
  parsed.password = '';
  return { url: parsed.toString(), ...(username ? { username } : {}), ...(hasPassword ? { password } : {}) };
}

export async function resolvePassword(source: PasswordSource | undefined): Promise<string | undefined> {
  if (typeof source !== 'function') return source;
  const value = await source();
  if (typeof value !== 'string') throw new ClientConfigError(`the password function returned ${typeof value}, not a string`);
  return value;
}

const JWT = /^[A-Za-z0-9_-]+\.([A-Za-z0-9_-]+)\.[A-Za-z0-9_-]*$/;

/** The `exp` claim of a JWT, in epoch milliseconds; undefined for a password that is not a JWT or has none. */
export function jwtExpiry(token: string): number | undefined {
  const match = JWT.exec(token);
  if (!match) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(match[1]!, 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof claims.exp === 'number' && Number.isFinite(claims.exp) ? claims.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/** When `password` expires (epoch ms), by the `tokenExpiresAt` option, else by its JWT `exp`. */
export function expiryOf(password: string | undefined, option: TokenExpiry | undefined): number | undefined {
  if (password === undefined) return undefined;
  const given = typeof option === 'function' ? option(password) : option;
  if (given !== undefined) return given instanceof Date ? given.getTime() : given;
  return jwtExpiry(password);
}

/**
 * How long after connecting to reconnect with a fresh token: a tenth of the token's remaining
 * life before it expires, at least 1 s and at most 60 s before, so that a slow token service and
 * the reconnect itself fit in; undefined for a token that has already expired (a new connection
 * would not help, the broker decides).
 */
export function refreshDelay(expiresAt: number, now: number): number | undefined {
  const remaining = expiresAt - now;
  if (remaining <= 0) return undefined;
  const lead = Math.min(60_000, Math.max(1_000, remaining / 10));
  return Math.max(remaining - lead, Math.min(1_000, remaining / 2));
}
