/**
 * @eddy/client: the Eddy TypeScript SDK.
 *
 *   import { connect } from '@eddy/client';
 *   const bus = await connect('mqtt://localhost:1883');
 *   await bus.publish('user/signedup', { email });            // resolves once the broker stored it
 *   await bus.subscribe('user/signedup', async (m) => send(m.payload), { group: 'mailer' });
 */
export { connect, EddyClient } from './client.js';
export type { ConnectOptions, PublishOptions, PublishResult, RequestOptions, SubscribeOptions } from './client.js';
export { Subscription } from './subscription.js';
export type { Delivery, Handler, IteratedDelivery } from './subscription.js';
export type { Headers } from './codec.js';
export type { ReconnectOptions, TlsOptions } from './connection.js';
export type { PasswordSource, TokenExpiry } from './credentials.js';
export {
  ClientConfigError,
  ClosedError,
  ConnectError,
  EddyClientError,
  OfflineQueueFullError,
  PublishError,
  RemoteError,
  RequestTimeoutError,
  SubscribeError,
} from './errors.js';
