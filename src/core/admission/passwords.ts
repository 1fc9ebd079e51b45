import { createHmac, randomBytes, scrypt as scryptCallback, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { ConfigError } from '../../util/errors.js';

/** scrypt's cost: 2^14 × 8 × 128 bytes = 16 MiB of memory and some tens of milliseconds a guess. */
const SCRYPT = { N: 16384, r: 8, p: 1 } as const;
const KEY_BYTES = 32;
const SALT_BYTES = 16;

function scrypt(password: string | Buffer, salt: Buffer, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scryptCallback(password, salt, KEY_BYTES, { ...options, maxmem: 64 * 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/** One user of the password file. */
export interface PasswordEntry {
  user: string;
  /** `$scrypt$N=…,r=…,p=…$<salt>$<key>` (base64). */
  hash: string;
  roles: string[];
}

/** A salted, slow hash of a password, in the password file's format. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await scrypt(password, salt, SCRYPT);
  return `$scrypt$N=${SCRYPT.N},r=${SCRYPT.r},p=${SCRYPT.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

/** Checks a password against a stored hash, in constant time for the comparison. */
export async function verifyPassword(password: string | Buffer, stored: string): Promise<boolean> {
  const m = /^\$scrypt\$N=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/.exec(stored);
  if (!m) return false;
  const expected = Buffer.from(m[5]!, 'base64');
  const key = await scrypt(password, Buffer.from(m[4]!, 'base64'), { N: Number(m[1]), r: Number(m[2]), p: Number(m[3]) });
  return key.length === expected.length && timingSafeEqual(key, expected);
}

const USER = /^[^:\s]+$/;
const ROLE = /^[A-Za-z0-9_.-]+$/;

/** Reads the password file: one `user:<hash>[:role,role]` per line; `#` starts a comment. */
export function loadPasswordFile(file: string): Map<string, PasswordEntry> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read password file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const users = new Map<string, PasswordEntry>();
  text.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === '' || line.trimStart().startsWith('#')) return;
    const parts = line.split(':');
    const [user, hash, roles] = parts;
    if (parts.length < 2 || parts.length > 3 || !USER.test(user!) || !hash!.startsWith('$scrypt$')) {
      throw new ConfigError(`${file}:${i + 1}: expected user:<hash>[:role,role] as written by eddy passwd`);
    }
    const roleList = roles ? roles.split(',').filter((r) => r !== '') : [];
    if (roleList.some((r) => !ROLE.test(r))) throw new ConfigError(`${file}:${i + 1}: roles are names of letters, digits, '_', '.' and '-'`);
    if (users.has(user!)) throw new ConfigError(`${file}:${i + 1}: user ${user} is listed twice`);
    users.set(user!, { user: user!, hash: hash!, roles: roleList });
  });
  return users;
}

/** Adds or replaces one user in the password file (written whole, then renamed into place, mode 0600). */
export async function setPassword(file: string, user: string, password: string, roles: string[]): Promise<'added' | 'replaced'> {
  if (!USER.test(user)) throw new ConfigError(`a user name cannot be empty or hold ':' or spaces, got ${JSON.stringify(user)}`);
  for (const role of roles) if (!ROLE.test(role)) throw new ConfigError(`a role is a name of letters, digits, '_', '.' and '-', got ${JSON.stringify(role)}`);
  if (password.length === 0) throw new ConfigError('the password is empty');
  let lines: string[] = [];
  try {
    lines = readFileSync(file, 'utf8').split(/\r?\n/);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new ConfigError(`cannot read password file ${file}: ${(err as NodeJS.ErrnoException).code}`);
  }
  if (lines.length > 0) loadPasswordFile(file); // refuse to rewrite a file that is not a password file
  const line = `${user}:${await hashPassword(password)}${roles.length > 0 ? `:${roles.join(',')}` : ''}`;
  const at = lines.findIndex((l) => l.split(':')[0] === user && !l.trimStart().startsWith('#'));
  if (at >= 0) lines[at] = line;
  else {
    while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    lines.push(line);
  }
  const temp = `${file}.tmp`;
  writeFileSync(temp, `${lines.join('\n')}\n`, { mode: 0o600 });
  renameSync(temp, file);
  return at >= 0 ? 'replaced' : 'added';
}

/**
 * Remembers recent successful checks, so that a reconnect storm (every device after a broker
 * restart) does not cost a slow hash each. It keeps keyed digests of the passwords, never the
 * passwords, and forgets everything when the password file is reloaded.
 */
export class VerifiedCache {
  private readonly key = randomBytes(32);
  private readonly digests = new Map<string, { digest: string; until: number }>();

  constructor(private readonly ttlMs = 10 * 60_000, private readonly max = 100_000) {}

  has(user: string, password: string | Buffer): boolean {
    const entry = this.digests.get(user);
    if (!entry || entry.until < Date.now()) return false;
    return entry.digest === this.digest(user, password);
  }

  add(user: string, password: string | Buffer): void {
    if (this.digests.size >= this.max) this.digests.clear();
    this.digests.set(user, { digest: this.digest(user, password), until: Date.now() + this.ttlMs });
  }

  clear(): void {
    this.digests.clear();
  }

  private digest(user: string, password: string | Buffer): string {
    return createHmac('sha256', this.key).update(user).update('\u0000').update(password).digest('base64');
  }
}
