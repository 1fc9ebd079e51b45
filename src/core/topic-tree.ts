/**
 * A trie of topic filters, one level per node. Matching a topic walks exact, `+` and `#`
 * branches at once, so the cost grows with the topic's depth, not with the number of filters.
 */
interface TrieNode<V> {
  children: Map<string, TrieNode<V>>;
  values: Set<V>;
}

function newNode<V>(): TrieNode<V> {
  return { children: new Map(), values: new Set() };
}

export class TopicTree<V> {
  private readonly root: TrieNode<V> = newNode();
  private count = 0;

  get size(): number {
    return this.count;
  }

  add(filter: string, value: V): void {
    let node = this.root;
    for (const level of filter.split('/')) {
      let child = node.children.get(level);
      if (!child) {
        child = newNode();
        node.children.set(level, child);
      }
      node = child;
    }
    if (!node.values.has(value)) {
      node.values.add(value);
      this.count++;
    }
  }

  remove(filter: string, value: V): boolean {
    const path: Array<[TrieNode<V>, string]> = [];
    let node: TrieNode<V> | undefined = this.root;
    for (const level of filter.split('/')) {
      const child: TrieNode<V> | undefined = node.children.get(level);
      if (!child) return false;
      path.push([node, level]);
      node = child;
    }
    if (!node.values.delete(value)) return false;
    this.count--;
    // Prune empty branches so churn of unique filters does not grow the tree forever.
    for (let i = path.length - 1; i >= 0; i--) {
      const [parent, level] = path[i]!;
      const child = parent.children.get(level)!;
      if (child.values.size > 0 || child.children.size > 0) break;
      parent.children.delete(level);
    }
    return true;
  }

  /**
   * Calls `visit` once per (filter, value) pair whose filter matches `topic`. The walk keeps its own
   * stack rather than recursing, so no topic depth can exhaust the call stack.
   */
  match(topic: string, visit: (value: V) => void): void {
    const levels = topic.split('/');
    // `$` topics are not matched by a wildcard at the first level (MQTT 4.7.2).
    const system = topic.charCodeAt(0) === 0x24; // '$'
    const nodes: Array<TrieNode<V>> = [this.root];
    const depths: number[] = [0];
    while (nodes.length > 0) {
      const node = nodes.pop()!;
      const depth = depths.pop()!;
      const wildcardsAllowed = !(system && depth === 0);
      if (wildcardsAllowed) {
        const hash = node.children.get('#');
        if (hash) for (const v of hash.values) visit(v);
      }
      if (depth === levels.length) {
        for (const v of node.values) visit(v);
        continue;
      }
      const exact = node.children.get(levels[depth]!);
      if (exact) {
        nodes.push(exact);
        depths.push(depth + 1);
      }
      if (wildcardsAllowed) {
        const plus = node.children.get('+');
        if (plus) {
          nodes.push(plus);
          depths.push(depth + 1);
        }
      }
    }
  }
}
