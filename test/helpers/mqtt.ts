import mqtt, { type IClientOptions, type MqttClient, type IPublishPacket } from 'mqtt';

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
