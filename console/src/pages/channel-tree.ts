// The topic tree of the Channels page, built from the pages of /v1/admin/channels loaded so far
// (topics split at `/`), and flattened into the rows the virtual table shows.

import type { ChannelView } from '../../../src/core/admin/views.js';

export interface TreeNode {
  /** This level's name. */
  name: string;
  /** The levels down to here, joined with `/`: the key of the node. */
  path: string;
  depth: number;
  children: Map<string, TreeNode>;
  /** The channel whose topic is exactly this path, if there is one. */
  channel: ChannelView | undefined;
  /** Channels at or under this node (of those loaded). */
  channels: number;
  rateIn: number;
  rateOut: number;
}

function node(name: string, path: string, depth: number): TreeNode {
  return { name, path, depth, children: new Map(), channel: undefined, channels: 0, rateIn: 0, rateOut: 0 };
}

export function buildTree(channels: Iterable<ChannelView>): TreeNode {
  const root = node('', '', -1);
  for (const channel of channels) {
    const levels = channel.channel.split('/');
    let at = root;
    const trail: TreeNode[] = [root];
    levels.forEach((level, i) => {
      let child = at.children.get(level);
      if (!child) {
        child = node(level, levels.slice(0, i + 1).join('/'), i);
        at.children.set(level, child);
      }
      at = child;
      trail.push(child);
    });
    at.channel = channel;
    for (const n of trail) {
      n.channels++;
      n.rateIn += channel.rateIn;
      n.rateOut += channel.rateOut;
    }
  }
  return root;
}

/** The rows on show: every node whose parents are all expanded, depth first, siblings by name. */
export function flatten(root: TreeNode, expanded: ReadonlySet<string>): TreeNode[] {
  const rows: TreeNode[] = [];
  const walk = (n: TreeNode): void => {
    const children = [...n.children.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const child of children) {
      rows.push(child);
      if (child.children.size > 0 && expanded.has(child.path)) walk(child);
    }
  };
  walk(root);
  return rows;
}

/** A declared address as a topic filter (`{param}` levels become `+`), for the live tail. */
export function filterOf(channel: string): string {
  return channel
    .split('/')
    .map((level) => (/^\{[^}]*\}$/.test(level) ? '+' : level))
    .join('/');
}
