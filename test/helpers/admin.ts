import mqtt, { type IClientOptions, type IConnackPacket, type IPublishPacket, type MqttClient } from 'mqtt';
import type { Page as WirePage } from '../../src/core/admin/views.js';
import type { EddyServer } from '../../src/server.js';

/** One answer of the admin API: the status, the JSON body, and the headers. */
export interface Answer<T = Record<string, unknown>> {
  status: number;
  body: T;
  headers: Headers;
}

/** A page of an admin list (the broker's own wire shape), of untyped items unless told. */
export type Page<T = Record<string, unknown>> = WirePage<T>;

/** Calls `/v1/admin/<path>` on the broker's HTTP port. */
export async function admin<T = Record<string, unknown>>(server: EddyServer, path: string, init: { method?: string; authorization?: string } = {}): Promise<Answer<T>> {
  const res = await fetch(`${server.httpUrl}/v1/admin/${path}`, { method: init.method ?? 'GET', headers: init.authorization ? { authorization: init.authorization } : {} });
  return { status: res.status, body: (await res.json()) as T, headers: res.headers };
}

/** Every item of a list, following `next` with pages of `limit`; checks that `total` holds on each page. */
export async function allPages<T>(server: EddyServer, path: string, limit: number): Promise<{ items: T[]; pages: number }> {
  const items: T[] = [];
  let after: string | null = null;
  let pages = 0;
  do {
    const sep = path.includes('?') ? '&' : '?';
    const { status, body }: Answer<Page<T>> = await admin<Page<T>>(server, `${path}${sep}limit=${limit}${after === null ? '' : `&after=${encodeURIComponent(after)}`}`);
    if (status !== 200) throw new Error(`${path}: ${status} ${JSON.stringify(body)}`);
    items.push(...body.items);
    after = body.next;
    pages++;
  } while (after !== null);
  return { items, pages };
}

/**
 * Connects an mqtt.js client with every PUBLISH it receives recorded from before CONNECT (what a
 * resumed session is sent comes right after CONNACK), and the CONNACK itself.
 */
export async function connectWithInbox(url: string, options: IClientOptions): Promise<{ client: MqttClient; inbox: IPublishPacket[]; connack: IConnackPacket }> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options });
  const inbox: IPublishPacket[] = [];
  client.on('packetreceive', (packet) => {
    if (packet.cmd === 'publish') inbox.push(packet as IPublishPacket);
  });
  const connack = await new Promise<IConnackPacket>((resolve, reject) => {
    client.once('connect', resolve);
    client.once('error', reject);
  });
  return { client, inbox, connack };
}

/** Waits until `cond` holds; fails with `what` after the timeout. */
export async function until(cond: () => boolean | Promise<boolean>, what: () => string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what()}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
