/**
 * What the broker says to each MQTT connection it closes when it stops (EddyServer.stop). MQTT 5
 * clients get a DISCONNECT with the reason code (and, for a redirect, the Server Reference property,
 * MQTT 5 §3.14.2.2.5 and §4.11); MQTT 3.1.1 has no server DISCONNECT, its clients see the socket close.
 */
export interface Farewell {
  /** 0x8B Server shutting down, or 0x9C Use another server. */
  reasonCode: number;
  /** The DISCONNECT's Reason String. */
  reason: string;
  /** The DISCONNECT's Server Reference: where to connect instead (one or more space-separated `host[:port]`). */
  serverReference?: string;
}

/** MQTT 5 reason code 0x8B: what a plain stop says (every listener's default). */
export const SHUTTING_DOWN: Farewell = { reasonCode: 0x8b, reason: 'server shutting down' };

/** MQTT 5 reason code 0x9C: "the Client should temporarily use another server" (0x9D would say permanently). */
export const USE_ANOTHER_SERVER = 0x9c;

/**
 * The farewell of a cluster node that drains: 0x9C with the Server Reference when one is configured;
 * without one, 0x8B (a 0x9C pointing nowhere would only tell the client what 0x8B already says).
 */
export function drainFarewell(serverReference: string | undefined): Farewell {
  if (!serverReference) return SHUTTING_DOWN;
  return { reasonCode: USE_ANOTHER_SERVER, reason: 'this node is shutting down: use another server of the cluster', serverReference };
}

/** How many MQTT connections a stop closed, and how many of them were told so in a DISCONNECT (MQTT 5). */
export interface FarewellCount {
  closed: number;
  told: number;
}

export const NO_FAREWELLS: FarewellCount = { closed: 0, told: 0 };

export function addFarewells(a: FarewellCount, b: FarewellCount): FarewellCount {
  return { closed: a.closed + b.closed, told: a.told + b.told };
}
