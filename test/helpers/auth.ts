import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { exportJWK, SignJWT } from 'jose';
import { stringify as stringifyYaml } from 'yaml';
import { setPassword } from '../../src/core/admission/index.js';
import type { AclRule } from '../../src/core/admission/index.js';

/** Writes a password file with these users (password, roles) into `dir`; returns its path. */
export async function passwordFile(dir: string, users: Record<string, { password: string; roles?: string[] }>, name = 'passwd'): Promise<string> {
  const file = path.join(dir, name);
  for (const [user, { password, roles }] of Object.entries(users)) await setPassword(file, user, password, roles ?? []);
  return file;
}

/** Writes an ACL file (YAML) into `dir`; returns its path. */
export function aclFile(dir: string, rules: AclRule[], name = 'acl.yaml'): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, stringifyYaml(rules));
  return file;
}

/** An HS256 secret of the length the broker asks for. */
export const JWT_SECRET = 'a-test-secret-of-at-least-thirty-two-characters';

/** Signs a JWT: HS256 with a secret (string), or RS256/ES256 with a private key. */
export async function signToken(
  key: string | KeyObject,
  claims: Record<string, unknown>,
  options: { alg?: 'HS256' | 'RS256' | 'ES256'; expiresIn?: string | number; notBefore?: string | number; issuer?: string; audience?: string; kid?: string } = {},
): Promise<string> {
  const alg = options.alg ?? (typeof key === 'string' ? 'HS256' : 'RS256');
  let jwt = new SignJWT(claims).setProtectedHeader({ alg, ...(options.kid ? { kid: options.kid } : {}) }).setIssuedAt();
  if (options.expiresIn !== undefined) jwt = jwt.setExpirationTime(options.expiresIn);
  if (options.notBefore !== undefined) jwt = jwt.setNotBefore(options.notBefore);
  if (options.issuer !== undefined) jwt = jwt.setIssuer(options.issuer);
  if (options.audience !== undefined) jwt = jwt.setAudience(options.audience);
  return jwt.sign(typeof key === 'string' ? new TextEncoder().encode(key) : key);
}

/** A key pair for RS256 or ES256, with the public key written as PEM and as a JWKS file into `dir`. */
export async function keyPair(dir: string, kind: 'rsa' | 'ec'): Promise<{ privateKey: KeyObject; publicKeyFile: string; jwksFile: string; kid: string }> {
  const { privateKey, publicKey } = kind === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const publicKeyFile = path.join(dir, `${kind}.pub.pem`);
  fs.writeFileSync(publicKeyFile, publicKey.export({ type: 'spki', format: 'pem' }));
  const kid = `${kind}-key-1`;
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: kind === 'rsa' ? 'RS256' : 'ES256', use: 'sig' };
  const jwksFile = path.join(dir, `${kind}.jwks.json`);
  fs.writeFileSync(jwksFile, JSON.stringify({ keys: [jwk] }));
  return { privateKey, publicKeyFile, jwksFile, kid };
}

/** `Authorization: Basic …` for a user and password. */
export function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}
