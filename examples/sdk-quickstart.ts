// The SDK program of the README, verbatim: node dist/examples/sdk-quickstart.js (with a broker running).
import { connect, PublishError } from '@eddy/client';

const bus = await connect(process.env.EDDY_URL ?? 'mqtt://localhost:1883', { clientId: 'quickstart' });

// A consumer group with a durable session: messages wait for it while it is away.
await bus.subscribe<{ email: string }>(
  'user/signedup',
  async ({ payload, deliveryCount }) => {
    console.log(`welcome mail to ${payload.email} (delivery ${deliveryCount})`); // throw to have it retried
  },
  { group: 'mailer', durable: true, concurrency: 4 },
);

try {
  const { id, seq } = await bus.publish('user/signedup', { email: 'ada@example.com' });
  console.log(`stored as seq ${seq} (id ${id})`); // resolves only once the broker has stored it
} catch (err) {
  if (err instanceof PublishError) console.error(err.reasonCode, err.reason); // e.g. 0x97 quota exceeded
  else throw err;
}

// Commands with a reply (MQTT 5 response topic + correlation data).
await bus.respond<{ item: string }>('shop/orders', (order) => ({ ordered: order.item }));
console.log(await bus.request('shop/orders', { item: 'milk' }, { timeout: 5000 }));

await bus.close(); // waits for running handlers, then disconnects
