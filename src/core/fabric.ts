/**
 * How broker nodes that share one storage engine (JetStream, `--cluster`) reach each other: the
 * core's side of the contract, as `mq` is for Aedes. The engine implements it; the core calls it
 * from the broker only (core/cluster-sync.ts applies what it reports).
 *
 * What goes where (docs/cluster.md, "Several Eddy nodes"):
 *  - durable deliveries (QoS 1/2 to persistent sessions and durable groups, on any node) are queue
 *    entries the publishing node writes before it confirms; the node that holds the session (or has
 *    a group member connected) reads them;
 *  - everything else a node accepted goes to the other nodes live, at most once (`broadcast`), and
 *    each delivers it to its own connected subscribers;
 *  - sessions (who holds them, their subscriptions) are replicated records every node watches.
 */
import type { Message } from './message.js';
import type { SessionRecord } from './storage.js';

/** What a message's publishing node already covered, so the other nodes do not deliver it twice. */
export interface CoveredDeliveries {
  /** Client ids whose queues got an entry for the message (their holder reads it from there). */
  sessions: ReadonlySet<string>;
  /** Consumer groups the message went to (an entry, or a member on the publishing node). */
  groups: ReadonlySet<string>;
}

/** What a node is told about the others. Called by the engine, guarded by it. */
export interface FabricHandlers {
  /** A message another node accepted, with its seq: deliver it to this node's connected subscribers. */
  message(message: Message, covered: CoveredDeliveries): void;
  /** Another node saved a session (connected there, subscribed, disconnected): its record, `owner` set. */
  sessionSaved(record: SessionRecord): void;
  /** Another node ended a session. */
  sessionDeleted(clientId: string): void;
}

export interface NodeFabric {
  /** This node's id in session records (`owner`), unique per process. */
  readonly nodeId: string;
  /** Starts reporting the other nodes' messages and session changes (after `loadSessions`). */
  start(handlers: FabricHandlers): Promise<void>;
  /** Sends an accepted message to the other nodes, with what this node covered: at most once, never a wait. */
  broadcast(message: Message, covered: CoveredDeliveries): void;
}
