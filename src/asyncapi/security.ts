import type { AsyncAPIDocumentInterface, SecuritySchemeInterface } from '@asyncapi/parser';
import type { AuthMethod } from '../core/admission/index.js';

/** An operation's action, from the clients' side as the broker enforces it: `send` guards publishing, `receive` receiving. */
export type SecuredAction = 'send' | 'receive';

/** The identity methods that prove who a client is (`none` and `anonymous` prove nothing). */
export type ProvenMethod = Exclude<AuthMethod, 'none' | 'anonymous'>;

const ANY_PROVEN: readonly ProvenMethod[] = ['password', 'jwt', 'certificate'];

/** What the operations of one channel ask of a client for one action: any of `methods`, as the schemes named in `schemes` say. */
export interface SecurityRequirement {
  methods: Set<ProvenMethod>;
  /** The scheme types the documents name (`userPassword`, `http bearer`, `X509`…), for reason strings and warnings. */
  schemes: Set<string>;
}

/** A channel's requirements per action; an action no operation secures is absent. */
export type ChannelSecurity = Partial<Record<SecuredAction, SecurityRequirement>>;

/** The ways of authenticating the broker applies (Admission.appliedSecurity()), for the live document and the start-up warning. */
export interface AppliedSecurity {
  methods: ProvenMethod[];
  /** Clients without credentials get in: nothing is configured, or `allowAnonymous`. */
  anonymous: boolean;
}

/**
 * The identity methods that satisfy one AsyncAPI security scheme. Schemes that name a password
 * (userPassword, plain, SCRAM, HTTP Basic) take a password-file user; token schemes (HTTP bearer,
 * OAuth 2, OpenID Connect) a JWT; X509 a verified client certificate. Eddy has nothing that
 * matches the others (API keys, symmetric/asymmetric encryption, GSSAPI, other HTTP schemes)
 * one to one, so for them any authenticated identity will do: they still keep anonymous clients out.
 */
export function methodsOfScheme(type: string, httpScheme: string | undefined): readonly ProvenMethod[] {
  switch (type) {
    case 'userPassword':
    case 'plain':
    case 'scramSha256':
    case 'scramSha512':
      return ['password'];
    case 'http':
      if (httpScheme?.toLowerCase() === 'basic') return ['password'];
      if (httpScheme?.toLowerCase() === 'bearer') return ['jwt'];
      return ANY_PROVEN;
    case 'oauth2':
    case 'openIdConnect':
      return ['jwt'];
    case 'X509':
      return ['certificate'];
    default:
      return ANY_PROVEN;
  }
}

function schemeName(scheme: SecuritySchemeInterface): string {
  return scheme.type() === 'http' && scheme.scheme() ? `http ${scheme.scheme()!.toLowerCase()}` : scheme.type();
}

/**
 * The security each operation of a document declares, by the address of its channel. An operation's
 * `security` lists alternatives (AsyncAPI 3: one of them must be satisfied); several operations of
 * one action on one address, in one document or across documents, unite theirs. An operation
 * without `security` says nothing about it, so it does not open a channel another operation secures.
 */
export function securityByAddress(document: AsyncAPIDocumentInterface, into: Map<string, ChannelSecurity>): void {
  for (const operation of document.operations()) {
    const requirements = operation.security();
    if (requirements.length === 0) continue;
    const address = operation.channels().all()[0]?.address();
    if (!address) continue;
    const action: SecuredAction = operation.action() === 'send' ? 'send' : 'receive';
    const security = into.get(address) ?? {};
    into.set(address, security);
    const requirement = (security[action] ??= { methods: new Set(), schemes: new Set() });
    for (const alternatives of requirements) {
      for (const requirementOf of alternatives.all()) {
        const scheme = requirementOf.scheme();
        for (const method of methodsOfScheme(scheme.type(), scheme.scheme())) requirement.methods.add(method);
        requirement.schemes.add(schemeName(scheme));
      }
    }
  }
}

/**
 * What to warn about at start: documents requiring security that the broker does not apply. With
 * no authentication at all nothing is refused (every client has every right); a requirement none of
 * whose methods the broker configures (X509 without client certificates) can never be met.
 */
export function securityWarnings(channels: Iterable<{ address: string; security?: ChannelSecurity }>, applied: AppliedSecurity): string[] {
  const all = new Set<string>();
  const unmet: string[] = [];
  for (const channel of channels) {
    for (const [action, requirement] of Object.entries(channel.security ?? {}) as Array<[SecuredAction, SecurityRequirement]>) {
      for (const scheme of requirement.schemes) all.add(scheme);
      if (![...requirement.methods].some((m) => applied.methods.includes(m))) {
        unmet.push(`${channel.address} (${action === 'send' ? 'publish' : 'receive'}: ${[...requirement.schemes].join(' or ')})`);
      }
    }
  }
  if (all.size === 0) return [];
  if (applied.methods.length === 0) {
    return [`the AsyncAPI documents require security (${[...all].join(', ')}) but the broker configures no authentication: nothing is refused, every client has every right`];
  }
  return unmet.length === 0 ? [] : [`the AsyncAPI documents require security the broker does not configure, so no client may do this: ${unmet.join(', ')}`];
}

/** The schemes of the live document: those the broker really applies, named as AsyncAPI components. */
const LIVE_SCHEMES: Record<ProvenMethod, { id: string; scheme: Record<string, unknown> }> = {
  password: { id: 'userPassword', scheme: { type: 'userPassword', description: 'A user of the password file: MQTT user name and password, or HTTP Basic.' } },
  jwt: { id: 'httpBearerToken', scheme: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'A JWT: as the MQTT password (any user name), or HTTP Authorization: Bearer.' } },
  certificate: { id: 'X509', scheme: { type: 'X509', description: 'A client certificate signed by the configured CA, on the TLS listeners.' } },
};

/** The AsyncAPI protocols of listeners that speak TLS, where a client certificate can be presented. */
const TLS_PROTOCOLS = new Set(['mqtts', 'secure-mqtt', 'wss', 'https']);

/** `components.securitySchemes` of the live document, and the `security` of a server speaking `protocol`. */
export function liveSecurity(applied: AppliedSecurity | undefined): { schemes: Record<string, unknown>; forServer: (protocol: string) => Array<{ $ref: string }> } {
  const schemes: Record<string, unknown> = {};
  for (const method of applied?.methods ?? []) schemes[LIVE_SCHEMES[method].id] = LIVE_SCHEMES[method].scheme;
  const forServer = (protocol: string): Array<{ $ref: string }> =>
    (applied?.methods ?? [])
      // A certificate is presented in a TLS handshake: only the TLS listeners (mqtts, wss, https) take one.
      .filter((m) => m !== 'certificate' || TLS_PROTOCOLS.has(protocol))
      .map((m) => ({ $ref: `#/components/securitySchemes/${LIVE_SCHEMES[m].id}` }));
  return { schemes, forServer };
}
