import type { Message } from './message.js';

/**
 * Per-message instrumentation (the metrics): the broker reports each message it receives, the
 * front ends each message they write to a client. Both calls sit on the hot path, so an
 * implementation does a few increments and nothing that allocates or builds strings.
 */
export interface MessageObserver {
  /** The broker received a message to route: from a client of any front end, or its own (wills, dead letters, redrive). */
  published(message: Message): void;
  /** A front end wrote a message to a client: an MQTT PUBLISH or an SSE event. */
  delivered(message: Message): void;
}
