import path from 'node:path';
import type { DeclaredChannel, DeclaredChannels } from '../core/admin/channels.js';
import { compareKeys } from '../core/admin/sorted-keys.js';
import { filtersOverlap, type ChannelRegistry, type DeclaredChannel as RegistryChannel } from './registry.js';

const cache = new WeakMap<ChannelRegistry, DeclaredChannels>();

/**
 * The registry's channels as the admin API shows them: by address, sorted, each with its messages'
 * content types and payload schemas (as ajv checks them). Built once per registry: a reload makes a
 * new registry, and with it a new view.
 */
export function declaredChannelsOf(registry: ChannelRegistry | undefined): DeclaredChannels | undefined {
  if (!registry) return undefined;
  let view = cache.get(registry);
  if (view) return view;
  const byRegistry = new Map<RegistryChannel, DeclaredChannel>();
  for (const channel of registry.channels) {
    byRegistry.set(channel, {
      address: channel.address,
      messages: channel.messages.map((m) => ({ name: m.id, contentType: m.contentType, schema: m.payload?.schema ?? null })),
      documents: [...new Set(channel.declarations.map((d) => path.basename(d.file)))],
      overlaps: (filter) => filtersOverlap(filter, channel.filter),
    });
  }
  const channels = [...byRegistry.values()].sort((a, b) => compareKeys(a.address, b.address));
  view = {
    channels,
    channelOf: (topic) => {
      const found = registry.channelOf(topic);
      return found ? byRegistry.get(found.channel) : undefined;
    },
  };
  cache.set(registry, view);
  return view;
}
