/**
 * The seed scenario's services, each a few lines of the Eddy SDK. Every function takes a broker URL
 * and returns a running service; `run.ts` starts them all against one broker.
 */
import { connect, type EddyClient } from '@eddy/client';

export interface UserSignedUp {
  userId: string;
  email: string;
}

export interface FridgeLevel {
  item: string;
  level: number;
}

export interface OrderCommand {
  item: string;
  quantity: number;
}

export interface OrderPlaced {
  orderId: string;
  item: string;
  quantity: number;
}

type Log = (line: string) => void;

/** Publishes `user/signedup` events; each resolves once the broker has stored it. */
export async function signupService(url: string, log: Log): Promise<{ signUp(email: string): Promise<void>; client: EddyClient }> {
  const client = await connect(url, { clientId: 'signup-service' });
  return {
    client,
    async signUp(email) {
      const event: UserSignedUp = { userId: email.split('@')[0]!, email };
      const { seq } = await client.publish('user/signedup', event, { headers: { source: 'signup-service' } });
      log(`signup    published user/signedup for ${email} (seq ${seq})`);
    },
  };
}

/** One mailer instance. Instances share the work as consumer group `mailer`: each event is mailed once. */
export async function mailer(url: string, instance: number, log: Log): Promise<EddyClient> {
  const client = await connect(url, { clientId: `mailer-${instance}` });
  await client.subscribe<UserSignedUp>(
    'user/signedup',
    async ({ payload, deliveryCount }) => {
      // A real mailer would call its mail provider here; throwing would make the broker retry later.
      log(`mailer-${instance}  welcome mail to ${payload.email}${deliveryCount > 1 ? ` (attempt ${deliveryCount})` : ''}`);
    },
    { group: 'mailer', durable: true },
  );
  return client;
}

/** Analytics sees every user event (no group), counting signups. */
export async function analytics(url: string, log: Log): Promise<{ client: EddyClient; signups: () => number }> {
  const client = await connect(url, { clientId: 'analytics' });
  let signups = 0;
  await client.subscribe<UserSignedUp>('user/#', ({ channel, payload }) => {
    if (channel === 'user/signedup') signups++;
    log(`analytics ${channel} ${payload.userId}: ${signups} signups so far`);
  });
  return { client, signups: () => signups };
}

/** The shopping service: watches fridge levels, and answers order commands (request/reply). */
export async function shoppingService(url: string, log: Log): Promise<EddyClient> {
  const client = await connect(url, { clientId: 'shopping-service' });
  let next = 1;
  await client.respond<OrderCommand>('shop/orders', (order) => {
    if (order.quantity < 1) throw new Error(`cannot order ${order.quantity} ${order.item}`);
    const placed: OrderPlaced = { orderId: `o-${next++}`, ...order };
    log(`shopping  ordered ${order.quantity} x ${order.item} as ${placed.orderId}`);
    return placed;
  });
  return client;
}

/** The fridge reports its levels; when one is low it sends an order command and waits for the reply. */
export async function fridge(url: string, log: Log): Promise<{ client: EddyClient; report(level: FridgeLevel): Promise<OrderPlaced | undefined> }> {
  const client = await connect(url, { clientId: 'fridge-kitchen' });
  return {
    client,
    async report(level) {
      await client.publish(`fridge/kitchen/level`, level);
      log(`fridge    ${level.item} at ${Math.round(level.level * 100)}%`);
      if (level.level >= 0.2) return undefined;
      const placed = await client.request<OrderPlaced>('shop/orders', { item: level.item, quantity: 2 } satisfies OrderCommand, { timeout: 5000 });
      log(`fridge    order confirmed: ${placed.orderId}`);
      return placed;
    },
  };
}
