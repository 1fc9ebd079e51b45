import type { AclRule, ClientAcl } from './acl.js';
import type { PeerInfo } from './peer.js';

/** How a client proved who it is: not at all where no authentication is configured (`none`). */
export type AuthMethod = 'none' | 'anonymous' | 'password' | 'jwt' | 'certificate';

/**
 * Who a client is, decided once at CONNECT (or per HTTP request) and carried with its session, so
 * that every check (ACL, quotas, admin routes) asks the same thing.
 */
export interface Identity {
  /** The user; undefined for an anonymous client. */
  user: string | undefined;
  roles: string[];
  clientId: string;
  method: AuthMethod;
  peer: PeerInfo;
  /** Rules of a JWT's `acl` claim, narrowing the ACL. */
  tokenAcl?: AclRule[];
  /** Epoch ms after which the identity is no longer valid (a JWT's `exp`). */
  expiresAt?: number;
  /** What this client may do (compiled from the ACL for it; compiled again on reload). */
  acl: ClientAcl;
}

/** The role that grants the admin API, the console, dead-letter redrive and reading `$SYS/#`, `$DLQ/#`. */
export const ADMIN_ROLE = 'admin';

export function isAdmin(identity: Identity): boolean {
  return identity.roles.includes(ADMIN_ROLE);
}

/** The key quotas count by: the user, or the client id for an anonymous client. */
export function quotaKey(identity: Identity): string {
  return identity.user !== undefined ? `user:${identity.user}` : `client:${identity.clientId}`;
}

/** What a client presents: at MQTT CONNECT (user name, password) or on an HTTP request (Basic, Bearer). */
export interface Credentials {
  clientId: string;
  username?: string;
  password?: Buffer;
  /** HTTP Bearer: the password is a token, and there is no user name. */
  bearer?: boolean;
  peer: PeerInfo;
}
