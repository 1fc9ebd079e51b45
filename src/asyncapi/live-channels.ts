import type { AsyncAPIDocumentInterface, ChannelInterface, MessageInterface } from '@asyncapi/parser';
import { IdAllocator, pointerToken, toLiveJson } from './live-json.js';
import { parameterNames } from './parameters.js';

type Json = Record<string, unknown>;

/** One channel of the live document, and what went into it. */
interface LiveChannel {
  id: string;
  json: Json;
  /** A message's content (as JSON, placed at the root) → its key here: a message repeated by several declarations is listed once. */
  keysByContent: Map<string, string>;
  declarations: Array<{ document: string; channel: string; description: string | undefined }>;
}

/** Where one channel object of one document went: its live channel, and its messages' keys there. */
interface Placement {
  channel: LiveChannel;
  keysByMessage: Map<object, string>;
  keysById: Map<string, string>;
}

/**
 * The declared channels of every loaded document as the live document lists them. Channel objects
 * with the same address, in one document or across documents, become one channel with the union of
 * their messages (the registry checks publishes the same way), so each address is listed once; the
 * documents' operations then refer to it. Which documents declare a channel is in its
 * `x-eddy-declared-by`.
 */
export class LiveChannels {
  readonly channels: Json = {};
  private readonly byAddress = new Map<string, LiveChannel>();
  /** Keyed by the parser's channel JSON, which operations and replies share with `document.channels()`. */
  private readonly placements = new Map<object, Placement>();

  constructor(private readonly ids: IdAllocator) {}

  add(document: AsyncAPIDocumentInterface): void {
    const title = document.info().title();
    const defaultContentType = document.defaultContentType();
    for (const channel of document.channels()) {
      const address = channel.address();
      let live = address ? this.byAddress.get(address) : undefined;
      if (live) this.uniteParameters(live, channel, address!);
      else {
        live = this.create(channel);
        // A channel without an address gets one only at run time: it merges with nothing.
        if (address) this.byAddress.set(address, live);
      }
      live.declarations.push({ document: title, channel: channel.id(), description: channel.description() });
      const placement: Placement = { channel: live, keysByMessage: new Map(), keysById: new Map() };
      for (const message of channel.messages()) {
        const key = this.addMessage(live, message, defaultContentType);
        placement.keysByMessage.set(message.json() as object, key);
        placement.keysById.set(message.id(), key);
      }
      this.placements.set(channel.json() as object, placement);
    }
  }

  /** The live id of a document's channel. */
  channelId(channel: ChannelInterface): string | undefined {
    return this.placements.get(channel.json() as object)?.channel.id;
  }

  /** `$ref`s to these messages of a document's channel, where they are in the live document. */
  messageRefs(channel: ChannelInterface, messages: MessageInterface[]): Json[] {
    const placement = this.placements.get(channel.json() as object);
    if (!placement) return [];
    const refs: Json[] = [];
    for (const m of messages) {
      const key = placement.keysByMessage.get(m.json() as object) ?? placement.keysById.get(m.id());
      if (key !== undefined) refs.push({ $ref: `#/channels/${placement.channel.id}/messages/${pointerToken(key)}` });
    }
    return refs;
  }

  /** Gives each merged channel its description and `x-eddy-declared-by`; call once every document is added. */
  finish(): void {
    for (const live of new Set([...this.placements.values()].map((p) => p.channel))) {
      live.json['x-eddy-declared-by'] = live.declarations.map(({ document, channel }) => ({ document, channel }));
      const described = live.declarations.filter((d) => d.description);
      const distinct = new Set(described.map((d) => d.description));
      // Each service describes a shared channel from its side: keep every side, saying whose it is.
      if (distinct.size > 1) live.json.description = described.map((d) => `${d.document} (${d.channel}): ${d.description}`).join('\n\n');
    }
  }

  private create(channel: ChannelInterface): LiveChannel {
    const id = this.ids.take(channel.id());
    const json: Json = {};
    for (const [k, v] of Object.entries(channel.json() as Json)) {
      // The documents' servers are not the broker's: the live document lists the real listeners.
      if (k === 'servers' || k === 'messages' || k.startsWith('x-parser-')) continue;
      json[k] = toLiveJson(v, `#/channels/${id}/${pointerToken(k)}`);
    }
    json.messages = {};
    const live: LiveChannel = { id, json, keysByContent: new Map(), declarations: [] };
    this.channels[id] = json;
    return live;
  }

  /**
   * Adds a message to a live channel unless the same message is there; returns its key there. The
   * content type its document gave by default is written out: the live document has a default of its own.
   */
  private addMessage(live: LiveChannel, message: MessageInterface, defaultContentType: string | undefined): string {
    const withType = (json: unknown): Json => {
      const out = json as Json;
      return out.contentType === undefined && defaultContentType ? { ...out, contentType: defaultContentType } : out;
    };
    const content = JSON.stringify(withType(toLiveJson(message.json(), '#')));
    const existing = live.keysByContent.get(content);
    if (existing !== undefined) return existing;
    const messages = live.json.messages as Json;
    let key = message.id();
    for (let n = 2; key in messages; n++) key = `${message.id()}_${n}`;
    messages[key] = withType(toLiveJson(message.json(), `#/channels/${live.id}/messages/${pointerToken(key)}`));
    live.keysByContent.set(content, key);
    return key;
  }

  /**
   * A parameter value any declaration allows is allowed (the registry's rule): the enums unite, and a
   * declaration that does not limit the parameter leaves it unlimited.
   */
  private uniteParameters(live: LiveChannel, channel: ChannelInterface, address: string): void {
    const mine = live.json.parameters as Record<string, Json> | undefined;
    const theirs = (channel.json() as { parameters?: Record<string, { enum?: unknown[] }> }).parameters;
    for (const name of parameterNames(address)) {
      const parameter = mine?.[name];
      if (!parameter || !Array.isArray(parameter.enum)) continue;
      const other = theirs?.[name]?.enum;
      if (Array.isArray(other)) parameter.enum = [...new Set([...(parameter.enum as unknown[]), ...other])];
      else delete parameter.enum;
    }
  }
}
