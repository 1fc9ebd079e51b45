import type http from 'node:http';
import type { Broker, PublishAdmissionRefusal } from '../core/broker.js';
import type { Identity } from '../core/admission/index.js';
import { peerOfRequest } from './peer.js';
import { HttpError } from './respond.js';
import { EDDY_REQUEST_HEADER } from './origin-policy.js';

/** What a 401 says a client may try: HTTP Basic with a password-file user, or a Bearer JWT. */
export const WWW_AUTHENTICATE = 'Basic realm="eddy", Bearer realm="eddy"';

/**
 * The challenge of a 401. A browser answers a `Basic` challenge with its own login dialog, also to
 * a script's fetch; the web console has its own login form, and marks its requests with
 * `X-Eddy-Request: 1` (which it sends anyway for the cross-site checks). Those get the `Bearer`
 * challenge alone: no browser prompts for it, and Basic credentials are still taken.
 */
export function challengeFor(req: http.IncomingMessage): string {
  return req.headers[EDDY_REQUEST_HEADER] === '1' ? 'Bearer realm="eddy"' : WWW_AUTHENTICATE;
}

/**
 * The identity behind an HTTP request, from its Authorization header (Basic or Bearer) or its
 * client certificate; an HttpError 401 when it has none that the broker accepts.
 */
export async function identify(req: http.IncomingMessage, broker: Broker, clientId?: string): Promise<Identity> {
  const authorization = req.headers.authorization;
  const outcome = await broker.admission.authenticateHttp(authorization, peerOfRequest(req), clientId);
  if ('kind' in outcome) {
    throw new HttpError(401, 'unauthorized', outcome.kind === 'anonymous' ? 'credentials are required: HTTP Basic or a Bearer token' : 'bad credentials');
  }
  return outcome;
}

/** The admin API, the console and dead-letter redrive need the admin role. */
export async function identifyAdmin(req: http.IncomingMessage, broker: Broker): Promise<Identity> {
  const identity = await identify(req, broker);
  if (!broker.admission.isAdmin(identity)) throw new HttpError(403, 'forbidden', 'this route needs the admin role');
  return identity;
}

const ASYNCAPI_ERRORS = { invalid: 'invalid_payload', undeclared: 'undeclared_channel', parameter: 'invalid_parameter' } as const;

/** A publish the admission refused, as an HTTP answer: the same decisions as MQTT's reason codes. */
export function httpRefusal(refusal: PublishAdmissionRefusal): HttpError {
  switch (refusal.kind) {
    case 'topic':
      return new HttpError(400, 'invalid_topic', refusal.reason);
    case 'not-authorized':
      // An anonymous client the AsyncAPI documents' security wants credentials from may try again with them.
      return refusal.unauthenticated ? new HttpError(401, 'unauthorized', refusal.reason) : new HttpError(403, 'forbidden', refusal.reason);
    case 'rate':
      return new HttpError(429, 'rate_limited', refusal.reason);
    case 'content-type':
      return new HttpError(415, 'unsupported_content_type', refusal.reason);
    default:
      return new HttpError(422, ASYNCAPI_ERRORS[refusal.kind], refusal.reason, refusal.errors);
  }
}
