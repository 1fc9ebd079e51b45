import type { EddyError } from '../util/errors.js';
import { showTopic } from './topics.js';

/** How a publish the core did not accept is answered: an MQTT 5 reason code and an HTTP status, with why. */
export interface PublishRefusalAnswer {
  reasonCode: number;
  status: number;
  /** The HTTP error code (`queue_full`, ...). */
  error: string;
  reason: string;
  /** False for conditions logged (rate-limited) where they arise: the front end logs them at debug only. */
  unexpected: boolean;
}

/**
 * One mapping, for every front end, from the error a publish was refused with to its answer:
 * quotas (disk full, a full queue, too many retained messages) are 0x97 Quota exceeded / 507;
 * storage that cannot be used right now (no file descriptor left) is 0x80 / 503; anything else
 * 0x80 / 500.
 */
export function answerFor(err: Error, topic: string): PublishRefusalAnswer {
  const code = (err as EddyError).code;
  const quoted = showTopic(topic);
  switch (code) {
    case 'EDDY_STORAGE_FULL':
      return { reasonCode: 0x97, status: 507, error: 'storage_full', reason: `${quoted}: not stored: the broker's disk is full`, unexpected: false };
    case 'EDDY_QUEUE_FULL':
      return { reasonCode: 0x97, status: 507, error: 'queue_full', reason: err.message, unexpected: false };
    case 'EDDY_RETAINED_FULL':
      return { reasonCode: 0x97, status: 507, error: 'retained_full', reason: err.message, unexpected: false };
    case 'EDDY_CLUSTER_UNAVAILABLE':
      // The JetStream cluster is unreachable or has no quorum: nothing is confirmed that is not replicated.
      return { reasonCode: 0x97, status: 503, error: 'cluster_unavailable', reason: `${quoted}: not stored: the storage cluster is unavailable for now (${err.message})`, unexpected: false };
    case 'EDDY_STORAGE_UNAVAILABLE':
      return { reasonCode: 0x80, status: 503, error: 'storage_unavailable', reason: `${quoted}: not stored: storage is unavailable for now (${err.message})`, unexpected: false };
    default:
      return { reasonCode: 0x80, status: 500, error: 'internal_error', reason: `${quoted}: not stored: ${err.message}`, unexpected: true };
  }
}
