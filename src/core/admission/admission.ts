import type { Logger } from '../../util/logger.js';
import type { AccessRules } from '../limits.js';
import { ClientAcl, compileFor, loadAclFile, type AclEntry, type AclRule, type AclSubject, type SubscribeDecision } from './acl.js';
import { FailureTracker } from './failures.js';
import { ADMIN_ROLE, isAdmin, quotaKey, type AuthMethod, type Credentials, type Identity } from './identity.js';
import { JwtVerifier, TokenError, type JwtConfig } from './jwt.js';
import { loadPasswordFile, verifyPassword, VerifiedCache, type PasswordEntry } from './passwords.js';
import type { PeerInfo } from './peer.js';
import { Quotas, type QuotaConfig } from './quotas.js';

/** How client certificates name their user: the subject CN, or the first SAN of a kind. */
export type CertificateUser = 'cn' | 'san:email' | 'san:dns' | 'san:uri';

/** The configuration of authentication and authorization (config `auth:`, `quotas:`, flags). */
export interface AdmissionConfig {
  passwordFile?: string;
  acl?: string;
  allowAnonymous?: boolean;
  jwt?: JwtConfig;
  /** Set when a CA for client certificates is configured: verified certificates authenticate. */
  certificates?: { user: CertificateUser; required: boolean };
  /** What names a certificate's user (config `auth.certificateUser`); `cn` by default. */
  certificateUser?: CertificateUser;
  quotas?: QuotaConfig;
  /** `--deny-subscribe` / `--deny-publish`: rules for every client, evaluated with the ACL. */
  access?: Partial<AccessRules>;
}

/** Why a client was not let in at CONNECT (or an HTTP request not served). */
export interface ConnectRefusal {
  /** `anonymous`: no credentials where they are required; `bad-credentials`; `quota`: connectionsPerUser. */
  kind: 'anonymous' | 'bad-credentials' | 'quota';
  reason: string;
}

/** Counters of /healthz and /metrics. */
export interface AdmissionStats {
  /** Refused authentications, by kind (`anonymous`, `bad-credentials`, `quota`). */
  authFailures: Record<string, number>;
  /** Publishes the ACL refused. */
  publishDenied: number;
  /** Subscriptions the ACL refused. */
  subscribeDenied: number;
  /** Deliveries the ACL kept from a subscriber (its filter matched, its right to receive did not). */
  receiveDenied: number;
  /** Publishes refused by a rate quota. */
  rateLimited: number;
}

/** The broker's own topics: only it writes them, and only the admin role reads them. */
const RESERVED = ['$SYS/#', '$DLQ/#'];

/**
 * The one place that decides who a client is and what it may do, for every front end: MQTT over
 * TCP, TLS and WebSocket, HTTP publish and SSE, the admin routes, wills, retained messages and
 * replays. The order is identity (password file, JWT, client certificate, or anonymous) → ACL →
 * quotas; AsyncAPI validation comes last, in the broker. With no authentication configured, every
 * client has every right, the admin role included.
 */
export class Admission {
  readonly stats: AdmissionStats = { authFailures: {}, publishDenied: 0, subscribeDenied: 0, receiveDenied: 0, rateLimited: 0 };
  private users = new Map<string, PasswordEntry>();
  private rules: AclRule[] = [];
  private jwt: JwtVerifier | undefined;
  private readonly verified = new VerifiedCache();
  private readonly failures = new FailureTracker();
  private readonly quotas: Quotas;
  private failuresLogged = 0;
  /**
   * Compiled ACLs by their entries: clients whose rules come out the same (same roles, no `%u`/`%c`
   * in what applies to them) share one ClientAcl and its decision cache. Emptied on reload.
   */
  private readonly compiled = new Map<string, ClientAcl>();

  constructor(
    private readonly config: AdmissionConfig,
    private readonly log: Logger,
  ) {
    this.quotas = new Quotas(config.quotas);
    this.load();
  }

  /** True when any way of authenticating is configured: anonymous clients are then refused unless allowed. */
  get authenticationConfigured(): boolean {
    return this.config.passwordFile !== undefined || this.config.jwt !== undefined || this.config.certificates !== undefined;
  }

  /**
   * The ways of authenticating in force, for the live document's security schemes: the identity
   * methods a client can prove itself with, and whether clients without credentials get in.
   */
  appliedSecurity(): { methods: Array<'password' | 'jwt' | 'certificate'>; anonymous: boolean } {
    const methods: Array<'password' | 'jwt' | 'certificate'> = [];
    if (this.config.passwordFile !== undefined) methods.push('password');
    if (this.config.jwt !== undefined) methods.push('jwt');
    if (this.config.certificates !== undefined) methods.push('certificate');
    const anonymous = !this.authenticationConfigured || (this.config.allowAnonymous === true && !this.config.certificates?.required);
    return { methods, anonymous };
  }

  /** Re-reads the password file, the ACL and the JWT keys (SIGHUP). Throws a ConfigError and keeps the old ones when one is bad. */
  reload(): string[] {
    this.load();
    this.verified.clear();
    this.compiled.clear();
    return [this.config.passwordFile && 'password file', this.config.acl && 'ACL', this.config.jwt && 'JWT keys'].filter((x): x is string => !!x);
  }

  private load(): void {
    // Read everything first: a bad file leaves what was in force untouched.
    const users = this.config.passwordFile !== undefined ? loadPasswordFile(this.config.passwordFile) : new Map<string, PasswordEntry>();
    const rules = this.config.acl !== undefined ? loadAclFile(this.config.acl) : [];
    const jwt = this.config.jwt !== undefined ? JwtVerifier.load(this.config.jwt) : undefined;
    this.users = users;
    this.rules = rules;
    this.jwt = jwt;
  }

  /**
   * Decides who the client is. Slow by design for an address that keeps failing (FailureTracker);
   * never says more than the refusal kind to the client, and never logs a password or a token.
   */
  async authenticate(credentials: Credentials): Promise<Identity | ConnectRefusal> {
    const delay = this.failures.delayFor(credentials.peer.address);
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    const outcome = await this.identify(credentials);
    if ('kind' in outcome) {
      this.refused(credentials, outcome);
      return outcome;
    }
    const full = this.quotas.connect(quotaKey(outcome));
    if (full) {
      const refusal: ConnectRefusal = { kind: 'quota', reason: full };
      this.refused(credentials, refusal);
      return refusal;
    }
    return outcome;
  }

  /** The connection of an authenticated client ended (for connectionsPerUser). */
  disconnected(identity: Identity): void {
    this.quotas.disconnect(quotaKey(identity));
  }

  private refused(credentials: Credentials, refusal: ConnectRefusal): void {
    this.stats.authFailures[refusal.kind] = (this.stats.authFailures[refusal.kind] ?? 0) + 1;
    if (refusal.kind !== 'quota') this.failures.failed(credentials.peer.address);
    // The first and then every 100th: a password-guessing flood must not become a log flood.
    if (this.failuresLogged++ % 100 === 0) {
      this.log.warn(
        { user: credentials.username, clientId: credentials.clientId, remote: credentials.peer.remote, kind: refusal.kind, reason: refusal.reason, failures: this.failuresLogged },
        'authentication refused',
      );
    }
  }

  private async identify(c: Credentials): Promise<Identity | ConnectRefusal> {
    const cert = c.peer.certificate;
    if (this.config.certificates && cert?.authorized) {
      const user = certificateUser(cert, this.config.certificates.user);
      if (!user) return { kind: 'bad-credentials', reason: `the client certificate has no ${this.config.certificates.user} to name its user` };
      return this.identity(user, this.users.get(user)?.roles ?? [], c, 'certificate');
    }
    if (c.password !== undefined && c.password.length > 0) {
      const secret = c.password.toString('utf8');
      if (this.jwt && (c.bearer || looksLikeJwt(secret))) {
        try {
          const claims = await this.jwt.verify(secret);
          const identity = this.identity(claims.user, claims.roles, c, 'jwt', claims.acl);
          if (claims.expiresAt !== undefined) identity.expiresAt = claims.expiresAt;
          return identity;
        } catch (err) {
          return { kind: 'bad-credentials', reason: err instanceof TokenError ? err.message : 'token refused' };
        }
      }
      if (this.config.passwordFile !== undefined) {
        const entry = c.username !== undefined ? this.users.get(c.username) : undefined;
        if (!entry) return { kind: 'bad-credentials', reason: 'unknown user or wrong password' };
        const ok = this.verified.has(entry.user, c.password) || (await verifyPassword(c.password, entry.hash));
        if (!ok) return { kind: 'bad-credentials', reason: 'unknown user or wrong password' };
        this.verified.add(entry.user, c.password);
        return this.identity(entry.user, entry.roles, c, 'password');
      }
      if (this.authenticationConfigured) return { kind: 'bad-credentials', reason: 'no password or token authentication is configured for these credentials' };
    } else if (c.username !== undefined && this.config.passwordFile !== undefined) {
      return { kind: 'bad-credentials', reason: 'a user name without a password' };
    }
    if (!this.authenticationConfigured) {
      // Nothing to check against: the user name, if any, is taken as given (for %u rules), and every client is admin.
      return this.identity(c.username, [ADMIN_ROLE], c, 'none');
    }
    if (this.config.certificates?.required) return { kind: 'anonymous', reason: 'a verified client certificate is required' };
    if (!this.config.allowAnonymous) return { kind: 'anonymous', reason: 'credentials are required (anonymous access is off)' };
    return this.identity(undefined, [], c, 'anonymous');
  }

  private identity(user: string | undefined, roles: string[], c: Credentials, method: AuthMethod, tokenAcl?: AclRule[]): Identity {
    const identity: Identity = { user, roles, clientId: c.clientId, method, peer: c.peer, acl: undefined as unknown as ClientAcl };
    if (tokenAcl) identity.tokenAcl = tokenAcl;
    identity.acl = this.compile(identity);
    return identity;
  }

  /** An identity for a session restored from storage, before its client is back (its rights decide what it is queued). */
  restored(clientId: string, user: string | undefined, method: AuthMethod, tokenAcl?: AclRule[]): Identity {
    const roles = !this.authenticationConfigured ? [ADMIN_ROLE] : user !== undefined ? (this.users.get(user)?.roles ?? []) : [];
    return this.identity(user, roles, { clientId, peer: UNKNOWN_PEER }, method, tokenAcl);
  }

  /**
   * Compiles (again, after a reload) what one identity may do. Returns false when the identity is
   * no longer valid: a password-file user that was removed from the file.
   */
  refresh(identity: Identity): boolean {
    if (identity.method === 'password' || identity.method === 'certificate') {
      const entry = this.users.get(identity.user!);
      if (identity.method === 'password' && !entry) return false;
      identity.roles = entry?.roles ?? [];
    }
    identity.acl = this.compile(identity);
    return true;
  }

  /** The identity of an HTTP client: as for MQTT, from Basic or Bearer credentials. */
  async authenticateHttp(authorization: string | undefined, peer: PeerInfo, clientId = `http-${peer.remote}`): Promise<Identity | ConnectRefusal> {
    const credentials: Credentials = { clientId, peer };
    const basic = /^Basic\s+(.+)$/i.exec(authorization ?? '');
    const bearer = /^Bearer\s+(.+)$/i.exec(authorization ?? '');
    if (basic) {
      const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      credentials.username = colon >= 0 ? decoded.slice(0, colon) : decoded;
      credentials.password = Buffer.from(colon >= 0 ? decoded.slice(colon + 1) : '', 'utf8');
    } else if (bearer) {
      credentials.password = Buffer.from(bearer[1]!, 'utf8');
      credentials.bearer = true;
    } else if (authorization !== undefined) {
      return { kind: 'bad-credentials', reason: 'Authorization must be Basic or Bearer' };
    }
    const outcome = await this.authenticate(credentials);
    // An HTTP request is not a connection that stays: it holds no connection quota.
    if (!('kind' in outcome)) this.quotas.disconnect(quotaKey(outcome));
    return outcome;
  }

  /** Why this identity may not publish on `topic` (the broker's own topics, the ACL); undefined when it may. */
  publishDenied(identity: Identity, topic: string): string | undefined {
    if (topic.startsWith('$DLQ/') || topic.startsWith('$SYS/')) return `only the broker publishes on ${topic.slice(0, topic.indexOf('/') + 1)}…`;
    if (identity.acl.allowsEverything || identity.acl.mayPublish(topic)) return undefined;
    this.stats.publishDenied++;
    return 'publishing is not allowed on this topic';
  }

  /** A publish rate quota; why not, when the identity is over it. */
  rateDenied(identity: Identity, payloadBytes: number): string | undefined {
    const refusal = this.quotas.publish(quotaKey(identity), payloadBytes);
    if (!refusal) return undefined;
    this.stats.rateLimited++;
    return refusal.reason;
  }

  /** Whether a subscription with this filter is granted (ACL), denied (0x87), or denied quietly (0x80, `--deny-subscribe`). */
  subscription(identity: Identity, filter: string): SubscribeDecision {
    const decision = identity.acl.allowsEverything ? 'granted' : identity.acl.subscription(filter);
    if (decision !== 'granted') this.stats.subscribeDenied++;
    return decision;
  }

  /** The right to receive a message on `topic`: checked for every delivery, whatever filter matched. */
  mayReceive(identity: Identity, topic: string): boolean {
    if (identity.acl.allowsEverything || identity.acl.mayReceive(topic)) return true;
    this.stats.receiveDenied++;
    return false;
  }

  isAdmin(identity: Identity): boolean {
    return isAdmin(identity);
  }

  /**
   * Whether the publisher of a dead letter could publish on its original topic now (redrive re-checks
   * it): the user's rights from the ACL and the password file's roles, or an anonymous client's.
   */
  originalPublisherMay(user: string | undefined, clientId: string, topic: string): boolean {
    const identity = this.restored(clientId, user, user === undefined ? 'anonymous' : 'password');
    return this.publishDenied(identity, topic) === undefined;
  }

  private compile(identity: Identity): ClientAcl {
    const subject: AclSubject = { user: identity.user, roles: identity.roles, clientId: identity.clientId };
    const admin = isAdmin(identity);
    const entries: AclEntry[] = RESERVED.map((filter) => ({ filter, allow: admin, publish: false, subscribe: true }));
    for (const filter of this.config.access?.denySubscribe ?? []) entries.push({ filter, allow: false, publish: false, subscribe: true, quiet: true });
    for (const filter of this.config.access?.denyPublish ?? []) entries.push({ filter, allow: false, publish: true, subscribe: false });
    entries.push(...compileFor(this.rules, subject));
    // No ACL file: everything not ruled out above is allowed. With one: what no rule allows is denied.
    const fallback = this.config.acl === undefined;
    const narrowingEntries = identity.tokenAcl ? compileFor(identity.tokenAcl, subject) : undefined;
    const key = JSON.stringify([entries, fallback, narrowingEntries]);
    let acl = this.compiled.get(key);
    if (!acl) {
      if (this.compiled.size >= MAX_COMPILED) this.compiled.clear();
      acl = new ClientAcl(entries, fallback, narrowingEntries ? new ClientAcl(narrowingEntries, false) : undefined);
      this.compiled.set(key, acl);
    }
    return acl;
  }
}

/** Distinct compiled ACLs kept for sharing; past it sharing starts over (nothing is lost but the caches). */
const MAX_COMPILED = 10_000;

const UNKNOWN_PEER: PeerInfo = { remote: 'restored', address: '', transport: 'tcp' };

/** Three base64url segments: a compact JWS. */
function looksLikeJwt(text: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(text);
}

function certificateUser(cert: NonNullable<PeerInfo['certificate']>, from: CertificateUser): string | undefined {
  if (from === 'cn') return cert.commonName || undefined;
  const prefix = { 'san:email': 'email:', 'san:dns': 'DNS:', 'san:uri': 'URI:' }[from];
  return cert.altNames.find((n) => n.startsWith(prefix))?.slice(prefix.length);
}
