import type { Broker } from '../broker.js';
import type { Message } from '../message.js';
import type { ChannelStats } from './channel-stats.js';
import { AdminError, pageOfAsync, type PageRequest } from './page.js';
import { SortedKeys } from './sorted-keys.js';
import type { Page, RetainedView } from './views.js';

/** Payload bytes a list item previews. */
const PREVIEW_BYTES = 64;

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function retainedView(message: Message, previewBytes = PREVIEW_BYTES): RetainedView {
  const truncated = message.payload.length > previewBytes;
  let shown = truncated ? message.payload.subarray(0, previewBytes) : message.payload;
  let text: string | undefined;
  try {
    text = utf8.decode(shown);
  } catch {
    // A cut may split a character: the preview then ends before it.
    if (truncated) {
      for (let cut = shown.length - 1; cut >= shown.length - 3 && text === undefined; cut--) {
        try {
          text = utf8.decode(shown.subarray(0, cut));
          shown = shown.subarray(0, cut);
        } catch {
          /* not there either */
        }
      }
    }
  }
  return {
    topic: message.topic,
    bytes: message.payload.length,
    qos: message.qos,
    seq: message.seq ?? null,
    publishedAt: new Date(message.publishedAt).toISOString(),
    expiresAt: message.expiresAt === undefined ? null : new Date(message.expiresAt).toISOString(),
    contentType: message.properties.contentType ?? null,
    payload: text ?? shown.toString('base64'),
    encoding: text === undefined ? 'base64' : 'utf8',
    truncated,
  };
}

/**
 * The retained messages, by topic. Storage keeps them (the disk engine only an index in memory,
 * the messages in its log); this keeps their topics in order, told by ChannelStats of every
 * retained publish and checking storage at each read, so a page reads only its own messages.
 */
export class RetainedAdmin {
  private readonly index: SortedKeys;

  constructor(
    private readonly broker: Broker,
    stats: ChannelStats,
  ) {
    const storage = broker.storage;
    this.index = new SortedKeys({
      keys: () => storage.retainedTopics(),
      has: (topic) => storage.retainedSize(topic) !== undefined,
      get size() {
        return storage.retainedCount;
      },
    });
    stats.retainedTouched = (topic) => this.index.touch(topic);
  }

  list(request: PageRequest): Promise<Page<RetainedView>> {
    return pageOfAsync(this.index, request, this.broker.storage.retainedCount, async (topic) => {
      const message = await this.read(topic);
      return message && retainedView(message);
    });
  }

  /** One retained message with its whole payload. */
  async get(topic: string): Promise<RetainedView> {
    const message = await this.read(topic);
    if (!message) throw new AdminError('not-found', `no retained message on ${JSON.stringify(topic)}`);
    return retainedView(message, Infinity);
  }

  /**
   * Clears a topic's retained message the MQTT way, with an empty retained publish through the
   * broker: storage records and compacts it as any other, and current subscribers get the empty
   * message, as they would from a client. Resolves once it is stored.
   */
  async clear(topic: string): Promise<void> {
    if (this.broker.storage.retainedSize(topic) === undefined) throw new AdminError('not-found', `no retained message on ${JSON.stringify(topic)}`);
    await this.broker.publishConfirmed({ topic, payload: Buffer.alloc(0), qos: 1, retain: true, properties: {}, publishedAt: Date.now() });
  }

  /** A topic is a filter that matches only itself (topic names hold no wildcards). */
  private async read(topic: string): Promise<Message | undefined> {
    if (this.broker.storage.retainedSize(topic) === undefined) return undefined;
    return (await this.broker.storage.retainedMatching(topic).next(1))[0];
  }
}
