/** Every error the SDK throws is an EddyClientError with a stable `code`. */
export class EddyClientError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** The broker could not be reached, or refused the connection (CONNACK reason >= 0x80). */
export class ConnectError extends EddyClientError {
  constructor(
    message: string,
    readonly reasonCode?: number,
    options?: { cause?: unknown },
  ) {
    super('EDDY_CONNECT', message, options);
  }
}

/** The broker refused a publish: MQTT 5 reason code and reason string (e.g. 0x97 quota exceeded). */
export class PublishError extends EddyClientError {
  constructor(
    readonly channel: string,
    readonly reasonCode: number,
    readonly reason: string | undefined,
  ) {
    super('EDDY_PUBLISH_REJECTED', `publish to ${channel} refused with 0x${reasonCode.toString(16).padStart(2, '0')}${reason ? `: ${reason}` : ''}`);
  }
}

/** A subscription was refused (SUBACK reason >= 0x80). */
export class SubscribeError extends EddyClientError {
  constructor(
    readonly filter: string,
    readonly reasonCode: number,
    readonly reason: string | undefined,
  ) {
    super('EDDY_SUBSCRIBE_REFUSED', `subscribe to ${filter} refused with 0x${reasonCode.toString(16).padStart(2, '0')}${reason ? `: ${reason}` : ''}`);
  }
}

/** More publishes were made while disconnected than `offlineQueueSize` allows. */
export class OfflineQueueFullError extends EddyClientError {
  constructor(readonly limit: number) {
    super('EDDY_OFFLINE_QUEUE_FULL', `not connected, and ${limit} publishes already wait for the connection (offlineQueueSize)`);
  }
}

/** No reply arrived within the request's timeout. */
export class RequestTimeoutError extends EddyClientError {
  constructor(
    readonly channel: string,
    readonly timeoutMs: number,
  ) {
    super('EDDY_REQUEST_TIMEOUT', `no reply on ${channel} within ${timeoutMs} ms`);
  }
}

/** The responder's handler failed; its message travels back as the reply. */
export class RemoteError extends EddyClientError {
  constructor(
    readonly channel: string,
    message: string,
  ) {
    super('EDDY_REMOTE_ERROR', `${channel}: the responder failed: ${message}`);
  }
}

/** The client was closed. */
export class ClosedError extends EddyClientError {
  constructor() {
    super('EDDY_CLOSED', 'the client is closed');
  }
}

/** Options that cannot work together. */
export class ClientConfigError extends EddyClientError {
  constructor(message: string) {
    super('EDDY_CONFIG', message);
  }
}
