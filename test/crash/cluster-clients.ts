/**
 * The clients of the cluster crash harness (cluster-harness.ts): each keeps one MQTT connection to
 * some live Eddy node for the whole run, across Eddy kills (the node's port changes on restart) and
 * NATS kills (Eddy stays up, a publish may be refused meanwhile). mqtt.js's own reconnect would dial
 * the dead node's old port, so reconnecting is done here, with `openClient` from the single-node harness.
 */
import type { IClientOptions, MqttClient } from 'mqtt';
import { destroyClient, durableSessionOptions, endClient, keyOf, openClient, sleep, topicOf, type Stop, type SubscriberTracker } from './harness.js';

/** Where a client connects now: its home node if that is up, else the next live node; undefined while none is. */
export type PickUrl = (home: number) => string | undefined;

const RETRY_MS = 150;

/** Resolves when the client's connection is closed (by a kill, a refusal, or us). */
function closed(client: MqttClient): Promise<void> {
  return new Promise((resolve) => {
    if (client.disconnected || (!client.connected && !client.reconnecting)) return resolve();
    client.once('close', () => resolve());
  });
}

/**
 * Keeps one client connected until `stop` fires: `session(first)` gives the connect options,
 * `connected` runs while the connection lasts (and must return once it closes).
 */
async function keepConnected(
  home: number,
  pick: PickUrl,
  stop: Stop,
  session: (first: boolean) => IClientOptions,
  connected: (client: MqttClient, sessionPresent: boolean, first: boolean) => Promise<void>,
  attach?: (client: MqttClient) => void,
  onClient?: (client: MqttClient | undefined) => void,
): Promise<void> {
  let first = true;
  while (!stop.stopped) {
    const url = pick(home);
    if (!url) {
      await Promise.race([sleep(RETRY_MS), stop.promise]);
      continue;
    }
    const opened = await openClient(url, session(first), 5000, attach);
    if (!opened.connack || stop.stopped) {
      destroyClient(opened.client);
      if (!stop.stopped) await Promise.race([sleep(RETRY_MS), stop.promise]);
      continue;
    }
    onClient?.(opened.client);
    const wasFirst = first;
    first = false;
    try {
      await connected(opened.client, opened.connack.sessionPresent, wasFirst);
    } finally {
      destroyClient(opened.client);
      onClient?.(undefined);
    }
  }
}

export interface SubscriberAgent {
  tracker: SubscriberTracker;
  home: number;
  filter: string;
  /** Resolves once the first connect subscribed (SUBACK with QoS 1). */
  subscribed: Promise<void>;
  /** Reconnects with clean start false answered with sessionPresent = false. */
  sessionLost: number;
  /** Connections after the first. */
  reconnects: number;
  /** Each connection as [CONNACK, close] in ms since the epoch (close undefined while open), for post-mortems of a loss. */
  connections: Array<[number, number | undefined]>;
  client: MqttClient | undefined;
  /** Settles once the agent stopped (after `stop` fired). */
  done: Promise<void>;
}

/**
 * Off and on: an intermittent subscriber stays connected for a random 0.5-3 s, disconnects
 * (DISCONNECT, or a dropped socket), stays away 0.5-3 s, and comes back, until `steady` is set (the
 * drain). What it is sent meanwhile waits in its session's JetStream queue, so a kill then tests the queue.
 */
export interface Intermittence {
  random: () => number;
  steady: { value: boolean };
}

/**
 * A durable subscriber (persistent session, QoS 1): the first connect starts a clean session and
 * subscribes, every later one resumes it (clean start false) and must find it. Connected kind: stays
 * connected while it can; intermittent kind (with `intermittence`): see Intermittence. With
 * `durable` false (the harness's negative control) it is a clean session that never subscribes again.
 */
export function startSubscriber(tracker: SubscriberTracker, home: number, pick: PickUrl, stop: Stop, durable = true, intermittence?: Intermittence): SubscriberAgent {
  const { clientId, protocolVersion, group } = tracker.spec;
  const filter = group ? `$share/${group}/crash/#` : 'crash/#';
  let markSubscribed!: () => void;
  let failSubscribed!: (e: Error) => void;
  const agent: SubscriberAgent = {
    tracker,
    home,
    filter,
    subscribed: new Promise<void>((resolve, reject) => ((markSubscribed = resolve), (failSubscribed = reject))),
    sessionLost: 0,
    reconnects: 0,
    connections: [],
    client: undefined,
    done: Promise.resolve(),
  };
  agent.subscribed.catch(() => {});
  const options = (first: boolean): IClientOptions =>
    durable ? durableSessionOptions(clientId, protocolVersion, first) : { clientId, protocolVersion, clean: true };
  agent.done = keepConnected(
    home,
    pick,
    stop,
    options,
    async (client, sessionPresent, first) => {
      if (!first) agent.reconnects++;
      if (first) {
        try {
          const granted = await client.subscribeAsync(filter, { qos: 1 });
          if (granted[0]?.qos !== 1) throw new Error(`${clientId}: subscription granted ${JSON.stringify(granted)}`);
          markSubscribed();
        } catch (e) {
          failSubscribed(e as Error);
          return;
        }
      } else if (durable && !sessionPresent) {
        agent.sessionLost++;
        // Subscribe again so the rest of the run still measures something; what the lost session held shows as missing.
        await client.subscribeAsync(filter, { qos: 1 }).catch(() => {});
      }
      if (!intermittence || intermittence.steady.value) return Promise.race([closed(client), stop.promise]);
      const ms = (): number => 500 + Math.floor(intermittence.random() * 2500);
      const outcome = await Promise.race([closed(client).then(() => 'closed'), stop.promise.then(() => 'stop'), sleep(ms()).then(() => 'leave')]);
      if (outcome !== 'leave' || intermittence.steady.value) return Promise.race([closed(client), stop.promise]);
      // Half the time a clean DISCONNECT, half the time the socket just goes (a device losing its network).
      if (intermittence.random() < 0.5) await endClient(client);
      else destroyClient(client);
      await Promise.race([sleep(ms()), stop.promise]);
    },
    (client) => tracker.attach(client),
    (client) => {
      agent.client = client;
      if (!client) return;
      // The close itself, not when the agent is done with the client (an intermittent one stays away first).
      const connection: [number, number | undefined] = [Date.now(), undefined];
      agent.connections.push(connection);
      client.once('close', () => (connection[1] ??= Date.now()));
    },
  );
  return agent;
}

/** What the publishers share: message numbers, what was confirmed, and when. */
export class PublishLedger {
  /** Next message number per publisher (= how many it published). */
  readonly next: number[];
  /** key -> round it was confirmed in. */
  readonly confirmed = new Map<number, number>();
  /** key -> when its PUBACK came (ms since the epoch), to line a loss up with kills and connections. */
  readonly confirmedAt = new Map<number, number>();
  /** PUBACK with reason >= 0x80 (e.g. 0x97 while the store is unreachable): not stored, never counted. */
  refused = 0;
  round = 0;
  /** Time of the latest confirmation of a publish sent at or after `since`, for recovery times. */
  private since = Infinity;
  firstConfirmAfterSince: number | undefined;

  constructor(publishers: number) {
    this.next = new Array<number>(publishers).fill(0);
  }

  /** From now on, note the first confirmation of a publish sent after this moment. */
  watchFrom(t: number): void {
    this.since = t;
    this.firstConfirmAfterSince = undefined;
  }

  noteConfirmed(key: number, sentAt: number): void {
    this.confirmed.set(key, this.round);
    this.confirmedAt.set(key, Date.now());
    if (sentAt >= this.since && this.firstConfirmAfterSince === undefined) this.firstConfirmAfterSince = Date.now();
  }
}

/**
 * A publisher that stays connected and publishes QoS 1 on `crash/p<p>`, payload `{"p":p,"n":n}`,
 * with at most `window` in flight and at most `rate` per second (0: the window alone). A message
 * counts as confirmed only when its PUBACK came with a reason below 0x80; a publish whose
 * connection died first is never counted (it may or may not arrive: an extra, not a loss).
 */
export function startPublisher(p: number, home: number, pick: PickUrl, stop: Stop, ledger: PublishLedger, window: number, rate: number): Promise<void> {
  const protocolVersion = p % 2 === 0 ? 5 : 4;
  return keepConnected(home, pick, stop, () => ({ clientId: `ccrash-pub-${p}`, clean: true, protocolVersion }), async (client) => {
    const gone = closed(client);
    const inflight = new Set<Promise<void>>();
    const started = Date.now();
    let sentHere = 0;
    while (!stop.stopped && client.connected) {
      if (inflight.size >= window) {
        await Promise.race([stop.promise, gone, ...inflight]);
        continue;
      }
      if (rate > 0) {
        const wait = started + (sentHere * 1000) / rate - Date.now();
        if (wait > 0) {
          await Promise.race([sleep(wait), stop.promise, gone]);
          continue;
        }
      }
      const n = ledger.next[p]!++;
      sentHere++;
      const sentAt = Date.now();
      const sent: Promise<void> = new Promise<void>((resolve) => {
        client.publish(topicOf(p), JSON.stringify({ p, n }), { qos: 1 }, (err) => {
          // mqtt.js calls back without error for PUBACK reason 0x00 and 0x10 (no matching subscribers), with an
          // ErrorWithReasonCode for the others, and not at all when the connection closed first.
          const code = (err as { code?: unknown } | undefined)?.code;
          if (!err || (typeof code === 'number' && code < 0x80)) ledger.noteConfirmed(keyOf(p, n), sentAt);
          else if (typeof code === 'number') ledger.refused++;
          resolve();
        });
      }).finally(() => inflight.delete(sent));
      inflight.add(sent);
    }
    // Stopped: give what is in flight a moment to be confirmed, so the drain starts from a settled count.
    if (stop.stopped && client.connected) await Promise.race([Promise.all(inflight), gone, sleep(5000)]);
  });
}
