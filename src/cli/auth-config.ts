import { dirname, isAbsolute, join } from 'node:path';
import type { AdmissionConfig, CertificateUser, JwtConfig, QuotaConfig } from '../core/admission/index.js';
import { ConfigError } from '../util/errors.js';

const AUTH_KEYS = new Set(['passwordFile', 'acl', 'allowAnonymous', 'jwt', 'certificateUser']);
const JWT_KEYS = new Set(['secret', 'publicKeyFile', 'jwksFile', 'issuer', 'audience']);
const QUOTA_KEYS = new Set(['publishRate', 'publishBytesRate', 'connectionsPerUser']);
const CERTIFICATE_USERS: CertificateUser[] = ['cn', 'san:email', 'san:dns', 'san:uri'];

/** The config file's `auth:` mapping (design note "Security files"); paths relative to the file. */
export function parseAuthConfig(raw: unknown, source: string): AdmissionConfig & { certificateUser?: CertificateUser } {
  const auth = mapping(raw, `${source}: auth`, AUTH_KEYS);
  const config: AdmissionConfig & { certificateUser?: CertificateUser } = {};
  for (const key of ['passwordFile', 'acl'] as const) {
    if (auth[key] === undefined) continue;
    if (typeof auth[key] !== 'string') throw new ConfigError(`${source}: auth.${key} must be a file name`);
    config[key] = relativeTo(source, auth[key]);
  }
  if (auth.allowAnonymous !== undefined) {
    if (typeof auth.allowAnonymous !== 'boolean') throw new ConfigError(`${source}: auth.allowAnonymous must be true or false`);
    config.allowAnonymous = auth.allowAnonymous;
  }
  if (auth.certificateUser !== undefined) {
    if (!CERTIFICATE_USERS.includes(auth.certificateUser as CertificateUser)) throw new ConfigError(`${source}: auth.certificateUser must be one of ${CERTIFICATE_USERS.join(', ')}`);
    config.certificateUser = auth.certificateUser as CertificateUser;
  }
  if (auth.jwt !== undefined) {
    const jwt = mapping(auth.jwt, `${source}: auth.jwt`, JWT_KEYS);
    const out: JwtConfig = {};
    for (const key of JWT_KEYS) {
      const value = jwt[key];
      if (value === undefined) continue;
      if (typeof value !== 'string' || value === '') throw new ConfigError(`${source}: auth.jwt.${key} must be a non-empty string`);
      out[key as keyof JwtConfig] = key.endsWith('File') ? relativeTo(source, value) : value;
    }
    config.jwt = out;
  }
  return config;
}

/** The config file's `quotas:` mapping: positive whole numbers. */
export function parseQuotas(raw: unknown, source: string): QuotaConfig {
  const quotas = mapping(raw, `${source}: quotas`, QUOTA_KEYS);
  const out: QuotaConfig = {};
  for (const [key, value] of Object.entries(quotas)) {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) throw new ConfigError(`${source}: quotas.${key} must be a whole number >= 1`);
    out[key as keyof QuotaConfig] = value;
  }
  return out;
}

function mapping(raw: unknown, where: string, keys: Set<string>): Record<string, unknown> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(`${where} must be a mapping`);
  for (const key of Object.keys(raw)) if (!keys.has(key)) throw new ConfigError(`${where}: unknown key "${key}" (known: ${[...keys].join(', ')})`);
  return raw as Record<string, unknown>;
}

function relativeTo(source: string, file: string): string {
  return isAbsolute(file) ? file : join(dirname(source), file);
}
