import { loadDocument, type LoadedDocument } from './load.js';
import { ChannelRegistry } from './registry.js';

export { AsyncApiError, loadDocument, type LoadedDocument } from './load.js';
export { declaredChannelsOf } from './admin-channels.js';
export { ChannelRegistry, filtersOverlap, type ChannelDeclaration, type DeclaredChannel, type Refusal } from './registry.js';

/** Loads every document (one per service) into one channel registry; channels with the same address merge. */
export async function loadRegistry(files: string[]): Promise<{ registry: ChannelRegistry; documents: LoadedDocument[] }> {
  const documents: LoadedDocument[] = [];
  for (const file of files) documents.push(await loadDocument(file));
  return { registry: new ChannelRegistry(documents), documents };
}
