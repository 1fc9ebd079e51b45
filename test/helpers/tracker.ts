import type { MqttClient } from 'mqtt';
import { RawClient } from './raw-client.js';

type Closable = MqttClient | RawClient;

/** Everything a test opens goes in here; an afterEach hook closes it even when the test failed. */
export function tracker(): { track<T extends Closable>(c: T): T; closeAll(): Promise<void> } {
  const open: Closable[] = [];
  return {
    track(c) {
      open.push(c);
      return c;
    },
    async closeAll() {
      for (const c of open.splice(0)) {
        if (c instanceof RawClient) c.close();
        else await c.endAsync(true).catch(() => {});
      }
    },
  };
}
