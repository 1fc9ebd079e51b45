import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { ConfigError, EddyError } from '../../util/errors.js';
import { parseAcl, type AclRule } from './acl.js';

/** `auth.jwt` of the configuration: one key source, and the claims a token must carry. */
export interface JwtConfig {
  /** Shared secret for HS256. */
  secret?: string;
  /** PEM public key (RSA for RS256, EC P-256 for ES256). */
  publicKeyFile?: string;
  /** A JWKS document (JSON) with the public keys, picked by `kid`. */
  jwksFile?: string;
  issuer?: string;
  audience?: string;
}

/** What a valid token says about its holder. */
export interface TokenClaims {
  user: string;
  roles: string[];
  /** Rules that narrow what the user may do (both the ACL file and these must allow). */
  acl?: AclRule[];
  /** Epoch ms of `exp`: the connection ends then (MQTT 5 0xA0). */
  expiresAt?: number;
}

/** A token that is not accepted: bad signature, expired, wrong issuer or audience, missing `sub`. */
export class TokenError extends EddyError {
  constructor(message: string) {
    super('EDDY_TOKEN', message);
  }
}

type Key = Uint8Array | ReturnType<typeof createPublicKey> | JWTVerifyGetKey;

/** Checks JSON Web Tokens (with `jose`) against the configured key, issuer and audience. */
export class JwtVerifier {
  private constructor(
    private readonly key: Key,
    private readonly algorithms: string[],
    private readonly config: JwtConfig,
  ) {}

  /** Reads the key material; a missing or unusable key is a ConfigError. */
  static load(config: JwtConfig): JwtVerifier {
    const sources = [config.secret, config.publicKeyFile, config.jwksFile].filter((s) => s !== undefined);
    if (sources.length !== 1) throw new ConfigError('auth.jwt needs exactly one of secret, publicKeyFile and jwksFile');
    if (config.secret !== undefined) {
      if (config.secret.length < 32) throw new ConfigError('auth.jwt.secret must be at least 32 characters (HS256 wants a 256-bit key)');
      return new JwtVerifier(new TextEncoder().encode(config.secret), ['HS256'], config);
    }
    if (config.publicKeyFile !== undefined) {
      const pem = read(config.publicKeyFile, 'public key');
      let key: ReturnType<typeof createPublicKey>;
      try {
        key = createPublicKey(pem);
      } catch (err) {
        throw new ConfigError(`auth.jwt.publicKeyFile ${config.publicKeyFile} is not a PEM public key: ${(err as Error).message}`);
      }
      const type = key.asymmetricKeyType;
      if (type !== 'rsa' && type !== 'ec') throw new ConfigError(`auth.jwt.publicKeyFile ${config.publicKeyFile}: an RSA (RS256) or EC P-256 (ES256) key, not ${type}`);
      return new JwtVerifier(key, [type === 'rsa' ? 'RS256' : 'ES256'], config);
    }
    let jwks: JSONWebKeySet;
    try {
      jwks = JSON.parse(read(config.jwksFile!, 'JWKS')) as JSONWebKeySet;
      if (!Array.isArray(jwks.keys)) throw new Error('no "keys" list');
    } catch (err) {
      throw new ConfigError(`auth.jwt.jwksFile ${config.jwksFile}: not a JWKS document: ${(err as Error).message}`);
    }
    return new JwtVerifier(createLocalJWKSet(jwks), ['RS256', 'ES256'], config);
  }

  /** The claims of a valid token; a TokenError says why another is refused (never logging the token). */
  async verify(token: string): Promise<TokenClaims> {
    let payload: Record<string, unknown>;
    try {
      const result = await jwtVerify(token, this.key as Parameters<typeof jwtVerify>[1], {
        algorithms: this.algorithms,
        ...(this.config.issuer !== undefined ? { issuer: this.config.issuer } : {}),
        ...(this.config.audience !== undefined ? { audience: this.config.audience } : {}),
      });
      payload = result.payload as Record<string, unknown>;
    } catch (err) {
      throw new TokenError(`token refused: ${describe(err as Error & { code?: string })}`);
    }
    if (typeof payload.sub !== 'string' || payload.sub === '') throw new TokenError('token refused: no sub claim (the user)');
    const roles = payload.roles === undefined ? [] : payload.roles;
    if (!Array.isArray(roles) || roles.some((r) => typeof r !== 'string')) throw new TokenError('token refused: the roles claim must be a list of names');
    let acl: AclRule[] | undefined;
    if (payload.acl !== undefined) {
      try {
        acl = parseAcl(payload.acl, 'the acl claim');
      } catch (err) {
        throw new TokenError(`token refused: ${(err as Error).message}`);
      }
    }
    return { user: payload.sub, roles: roles as string[], ...(acl ? { acl } : {}), ...(typeof payload.exp === 'number' ? { expiresAt: payload.exp * 1000 } : {}) };
  }
}

function read(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read the JWT ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function describe(err: Error & { code?: string; claim?: string }): string {
  switch (err.code) {
    case 'ERR_JWT_EXPIRED':
      return 'it has expired';
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'bad signature';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      return `claim ${err.claim ?? ''} is not accepted (${err.message})`;
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return 'signed with an algorithm that is not accepted';
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return 'no key of the JWKS matches it';
    default:
      return err.code === 'ERR_JWS_INVALID' || err.code === 'ERR_JWT_INVALID' ? 'not a valid JWT' : err.message;
  }
}
