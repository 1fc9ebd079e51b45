/**
 * The seed scenario's services, each a few lines over the client generated from the scenario's
 * AsyncAPI document (`events.ts`, from `eddy asyncapi generate examples/seed/asyncapi.yaml --out
 * examples/seed/events.ts`): payloads, headers and channel parameters are typed by the document.
 * Every function takes a broker URL and returns a running service; `run.ts` starts them all.
 */
import { connect, type EddyClient } from '@eddy/client';
import { createClient, type FridgeLevelPayload, type OrderPlacedPayload } from './events.js';

type Log = (line: string) => void;

/** Publishes `user/signedup` events; each resolves once the broker has stored it. */
export async function signupService(url: string, log: Log): Promise<{ signUp(email: string): Promise<void>; client: EddyClient }> {
  const client = await connect(url, { clientId: 'signup-service' });
  const api = createClient(client);
  return {
    client,
    async signUp(email) {
      const { seq } = await api.signUp.publish({ userId: email.split('@')[0]!, email }, { headers: { source: 'signup-service' } });
      log(`signup    published user/signedup for ${email} (seq ${seq})`);
    },
  };
}

/** One mailer instance. Instances share the work as consumer group `mailer`: each event is mailed once. */
export async function mailer(url: string, instance: number, log: Log): Promise<EddyClient> {
  const client = await connect(url, { clientId: `mailer-${instance}` });
  await createClient(client).onSignUp.subscribe(
    async ({ payload, deliveryCount }) => {
      // A real mailer would call its mail provider here; throwing would make the broker retry later.
      log(`mailer-${instance}  welcome mail to ${payload.email}${deliveryCount > 1 ? ` (attempt ${deliveryCount})` : ''}`);
    },
    { group: 'mailer', durable: true },
  );
  return client;
}

/** Analytics sees every signup (no group), counting them. */
export async function analytics(url: string, log: Log): Promise<{ client: EddyClient; signups: () => number }> {
  const client = await connect(url, { clientId: 'analytics' });
  let signups = 0;
  await createClient(client).onSignUp.subscribe(({ payload, headers }) => {
    signups++;
    log(`analytics user/signedup ${payload.userId} (from ${headers.source ?? 'unknown'}): ${signups} signups so far`);
  });
  return { client, signups: () => signups };
}

/** The shopping service: answers order commands (request/reply). */
export async function shoppingService(url: string, log: Log): Promise<EddyClient> {
  const client = await connect(url, { clientId: 'shopping-service' });
  let next = 1;
  await createClient(client).takeOrder.respond((order) => {
    if (order.quantity < 1) throw new Error(`cannot order ${order.quantity} ${order.item}`);
    const placed: OrderPlacedPayload = { orderId: `o-${next++}`, ...order };
    log(`shopping  ordered ${order.quantity} x ${order.item} as ${placed.orderId}`);
    return placed;
  });
  return client;
}

/** The kitchen fridge reports its levels; when one is low it sends an order command and waits for the reply. */
export async function fridge(url: string, log: Log): Promise<{ client: EddyClient; report(level: FridgeLevelPayload): Promise<OrderPlacedPayload | undefined> }> {
  const client = await connect(url, { clientId: 'fridge-kitchen' });
  const api = createClient(client);
  return {
    client,
    async report(level) {
      await api.reportLevel.publish({ fridgeId: 'kitchen' }, level);
      log(`fridge    ${level.item} at ${Math.round(level.level * 100)}%`);
      if (level.level >= 0.2) return undefined;
      const placed = await api.orderItem.request({ item: level.item, quantity: 2 }, { timeout: 5000 });
      log(`fridge    order confirmed: ${placed.orderId}`);
      return placed;
    },
  };
}
