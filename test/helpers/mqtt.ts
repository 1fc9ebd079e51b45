import mqtt, { type IClientOptions, type IClientPublishOptions, type MqttClient, type IPublishPacket } from 'mqtt';

/** Connects an mqtt.js client and waits for CONNACK. */
export async function connectClient(url: string, options: IClientOptions = {}): Promise<MqttClient> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  return client;
}

/** Collects messages; `take(n)` resolves with the first n (or rejects after the timeout). */
export function collect(client: MqttClient): { messages: IPublishPacket[]; take(n: number, timeoutMs?: number): Promise<IPublishPacket[]> } {
  const messages: IPublishPacket[] = [];
  const waiters: Array<{ n: number; resolve: (m: IPublishPacket[]) => void }> = [];
  client.on('message', (_t, _p, packet) => {
    messages.push(packet);
    for (const w of [...waiters]) {
      if (messages.length >= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(messages.slice(0, w.n));
      }
    }
  });
  return {
    messages,
    take(n, timeoutMs = 5000) {
      if (messages.length >= n) return Promise.resolve(messages.slice(0, n));
      return new Promise((resolve, reject) => {
        const waiter = { n, resolve: (m: IPublishPacket[]) => { clearTimeout(timer); resolve(m); } };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1);
          reject(new Error(`expected ${n} messages, got ${messages.length}: ${messages.map((m) => m.topic).join(', ')}`));
        }, timeoutMs);
        waiters.push(waiter);
      });
    },
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** What the broker answered to a QoS 1 publish: the PUBACK's reason code (0 = accepted) and reason string. */
export interface PublishAck {
  reasonCode: number;
  reasonString: string | undefined;
}

/**
 * Publishes at QoS 1 and resolves with the PUBACK, also when its reason code refuses the message
 * (mqtt.js reports that as an error carrying the code, with the PUBACK beside it).
 */
export function publishWithAck(client: MqttClient, topic: string, payload: string | Buffer, options: IClientPublishOptions = {}): Promise<PublishAck> {
  return new Promise((resolve, reject) => {
    client.publish(topic, payload, { qos: 1, ...options }, (err, packet) => {
      const code = (err as { code?: unknown } | undefined)?.code;
      if (err && typeof code !== 'number') return reject(err);
      const ack = packet as { reasonCode?: number; properties?: { reasonString?: string } } | undefined;
      resolve({ reasonCode: typeof code === 'number' ? code : (ack?.reasonCode ?? 0), reasonString: ack?.properties?.reasonString });
    });
  });
}
