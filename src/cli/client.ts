import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { ConfigError, EddyError } from '../util/errors.js';

export const DEFAULT_URL = process.env.EDDY_URL ?? 'mqtt://127.0.0.1:1883';

/** Connects an MQTT 5 client for the CLI, failing fast with one clear line when the broker is not there. */
export function connectCli(url: string, options: IClientOptions): Promise<MqttClient> {
  if (!/^(mqtts?|wss?|tcp):\/\//.test(url)) throw new ConfigError(`--url must start with mqtt://, ws:// or wss://, got ${JSON.stringify(url)}`);
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 10_000, ...options });
    const onError = (err: Error & { code?: string | number }): void => {
      client.end(true);
      reject(new EddyError('EDDY_CONNECT', `cannot connect to ${url}: ${err.message || err.code}`));
    };
    client.once('error', onError);
    client.once('connect', () => {
      client.off('error', onError);
      resolve(client);
    });
    client.once('close', () => onError(new Error('connection closed')));
  });
}

/** mqtt.js reports a PUBACK/SUBACK failure as an error with `code` = the reason code. */
export function describeReason(err: unknown): string {
  const e = err as Error & { code?: number };
  const code = typeof e.code === 'number' ? `0x${e.code.toString(16).padStart(2, '0')} ` : '';
  return `${code}${e.message}`.trim();
}
