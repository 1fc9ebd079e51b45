import type { Packet } from 'mqtt-packet';
import type { Broker } from '../../../core/broker.js';
import type { Session } from '../../../core/session.js';
import type { Logger } from '../../../util/logger.js';

/** What a packet handler needs of its connection (one connected client, after CONNECT). */
export interface PacketContext {
  readonly broker: Broker;
  readonly log: Logger;
  readonly clientId: string;
  readonly protocolVersion: number;
  readonly session: Session;
  send(packet: Packet): void;
  /** The reason string as a property, unless the client asked for no problem information. */
  reasonProps(reason: string): { reasonString: string } | undefined;
  /** Ends the connection from the broker's side, with a DISCONNECT reason on MQTT 5. */
  close(reasonCode?: number, reason?: string): void;
  /** Closes for a protocol violation. */
  fail(err: Error & { reasonCode: number }): void;
  /** Whether PUBACK/PUBREC carry `eddy-seq` (asked for at CONNECT, or by a replaying SUBSCRIBE). */
  includeSeq: boolean;
}
