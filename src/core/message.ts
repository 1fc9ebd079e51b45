export type QoS = 0 | 1 | 2;
export type UserProperties = Record<string, string | string[]>;

/** What travels with a message besides topic and payload (MQTT 5 properties Eddy keeps end to end). */
export interface MessageProperties {
  payloadFormatIndicator?: boolean;
  contentType?: string;
  responseTopic?: string;
  correlationData?: Buffer;
  userProperties?: UserProperties;
}

/** A published message as the broker core sees it, whatever front end it came through. */
export interface Message {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  properties: MessageProperties;
  /** Epoch ms after which the message must not be delivered (MQTT 5 message expiry). */
  expiresAt?: number;
  /** Epoch ms when the broker accepted it. */
  publishedAt: number;
  /** Sequence number assigned by storage when it stores the message. */
  seq?: number;
  /** Client id of the publisher, for no-local subscriptions. */
  origin?: string;
  /** The publisher's user, when it had one (a dead letter's redrive checks its rights again). */
  originUser?: string;
}

/** Seconds left before expiry, rounded up; 0 or less means expired. */
export function remainingExpirySeconds(message: Message, now: number): number | undefined {
  if (message.expiresAt === undefined) return undefined;
  return Math.ceil((message.expiresAt - now) / 1000);
}

export function isExpired(message: Message, now: number): boolean {
  return message.expiresAt !== undefined && message.expiresAt <= now;
}

/** The value of a user property; the first one when the key was given more than once. */
export function firstUserProperty(properties: UserProperties | undefined, key: string): string | undefined {
  const value = properties?.[key];
  return Array.isArray(value) ? value[0] : value;
}
