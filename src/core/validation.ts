import type { Logger } from '../util/logger.js';
import type { Message } from './message.js';
import type { AuthMethod } from './admission/index.js';

/** What the broker needs of the AsyncAPI channel registry (src/asyncapi). */
export interface PublishValidator {
  check(message: Message, strict: boolean): PublishRefusal | undefined;
  /** Whether a document declares a channel of this topic's shape. */
  declares(topic: string): boolean;
  filterIsDeclared(filter: string): boolean;
  /**
   * What the documents' operations on this topic's channel require of a client's identity to
   * publish (`send`) or receive there (AsyncAPI `security`), or undefined when nothing. For a
   * filter with wildcards: the requirement of the channel that holds every topic the filter can match.
   */
  requiredIdentity(topicOrFilter: string, action: 'send' | 'receive'): IdentityRequirement | undefined;
}

/** What an operation's `security` asks of a client: any of `methods` (schemes mapped onto Eddy's identities). */
export interface IdentityRequirement {
  methods: ReadonlySet<AuthMethod>;
  /** The schemes the documents name (`userPassword`, `http bearer`, `X509`…), for the reason string. */
  schemes: ReadonlySet<string>;
}

/**
 * Why a client with an identity of this method may not publish (`send`) or receive on a channel
 * with this requirement; undefined when it may. With no authentication configured (method `none`)
 * every client has every right, as everywhere else.
 */
export function identityRefusal(requirement: IdentityRequirement | undefined, method: AuthMethod, action: 'send' | 'receive'): string | undefined {
  if (!requirement || method === 'none') return undefined;
  if (method !== 'anonymous' && requirement.methods.has(method)) return undefined;
  const schemes = [...requirement.schemes].join(' or ');
  const what = action === 'send' ? 'publishing' : 'receiving';
  if (method === 'anonymous') return `not authorized: the AsyncAPI document requires authentication (${schemes}) for ${what} here`;
  return `not authorized: the AsyncAPI document requires ${schemes} for ${what} here, not ${method === 'jwt' ? 'a JWT' : method === 'certificate' ? 'a client certificate' : 'a password'}`;
}

export interface PublishRefusal {
  /**
   * `content-type`: no message of the channel takes this content type (HTTP 415); `parameter`: a
   * declared channel's shape with a parameter outside its `enum` (refused like `invalid`).
   */
  kind: 'invalid' | 'undeclared' | 'content-type' | 'parameter';
  /** One line for a reason string: `user/signedup: /email must match format "email"`. */
  reason: string;
  errors: string[];
}

/** Told about client publishes on channels no document declares (the live document lists them). */
export interface TrafficRecorder {
  record(message: Message): void;
}

/**
 * The checks a client's publish passes before it is routed: the AsyncAPI documents (when loaded),
 * and the recording of undeclared channels. `$`-topics are the broker's own and are not checked.
 */
export class PublishChecks {
  constructor(
    private readonly validator: PublishValidator | undefined,
    private readonly strict: boolean,
    private readonly traffic: TrafficRecorder | undefined,
    private readonly stats: { invalidPublishes: number },
    private readonly log: Logger,
  ) {}

  check(message: Message): PublishRefusal | undefined {
    if (message.topic.startsWith('$')) return undefined;
    if (!this.validator) {
      this.traffic?.record(message);
      return undefined;
    }
    const refusal = this.validator.check(message, this.strict);
    if (!refusal && this.traffic && !this.validator.declares(message.topic)) this.traffic.record(message);
    if (refusal) {
      this.stats.invalidPublishes++;
      this.log.warn({ topic: message.topic, origin: message.origin, kind: refusal.kind, reason: refusal.reason }, 'publish does not match the AsyncAPI documents');
    }
    return refusal;
  }
}

/** The copy of an invalid message that is kept on `$DLQ/invalid/<topic>`, with why. */
export function invalidLetter(message: Message, refusal: PublishRefusal): Message {
  return {
    topic: `$DLQ/invalid/${message.topic}`,
    payload: message.payload,
    qos: 1,
    retain: false,
    properties: {
      ...message.properties,
      userProperties: {
        ...message.properties.userProperties,
        'eddy-dlq-reason': refusal.reason,
        'eddy-validation-errors': refusal.errors,
        'eddy-original-topic': message.topic,
        ...(message.origin !== undefined ? { 'eddy-client-id': message.origin } : {}),
      },
    },
    publishedAt: Date.now(),
    ...(message.origin !== undefined ? { origin: message.origin } : {}),
    ...(message.originUser !== undefined ? { originUser: message.originUser } : {}),
  };
}
