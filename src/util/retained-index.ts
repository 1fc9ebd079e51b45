/**
 * Retained messages by topic, in a trie of topic levels, so that a new subscription finds the
 * retained messages its filter matches by walking the filter (`+` takes every child, `#` a whole
 * subtree) rather than by testing every retained topic. The storage engines keep their own
 * values in it: the memory engine the messages, the disk engine where each one lies in the log.
 */
interface Node<V> {
  children: Map<string, Node<V>>;
  value: V | undefined;
  /** The topic, kept at the node that holds a value. */
  topic: string | undefined;
}

function newNode<V>(): Node<V> {
  return { children: new Map(), value: undefined, topic: undefined };
}

export class RetainedIndex<V> {
  private readonly root: Node<V> = newNode();
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(topic: string): V | undefined {
    let node: Node<V> | undefined = this.root;
    for (const level of topic.split('/')) {
      node = node.children.get(level);
      if (!node) return undefined;
    }
    return node.value;
  }

  set(topic: string, value: V): void {
    let node = this.root;
    for (const level of topic.split('/')) {
      let child = node.children.get(level);
      if (!child) node.children.set(level, (child = newNode()));
      node = child;
    }
    if (node.value === undefined) this.count++;
    node.value = value;
    node.topic = topic;
  }

  /** Removes the topic's value; returns it, when there was one. */
  delete(topic: string): V | undefined {
    const path: Array<[Node<V>, string]> = [];
    let node: Node<V> | undefined = this.root;
    for (const level of topic.split('/')) {
      const child: Node<V> | undefined = node.children.get(level);
      if (!child) return undefined;
      path.push([node, level]);
      node = child;
    }
    const value = node.value;
    if (value === undefined) return undefined;
    node.value = undefined;
    node.topic = undefined;
    this.count--;
    // Prune empty branches, so that churn of unique topics does not grow the trie for ever.
    for (let i = path.length - 1; i >= 0; i--) {
      const [parent, level] = path[i]!;
      const child = parent.children.get(level)!;
      if (child.value !== undefined || child.children.size > 0) break;
      parent.children.delete(level);
    }
    return value;
  }

  /** Every (topic, value), in no particular order. */
  *entries(): IterableIterator<[string, V]> {
    const stack: Array<Node<V>> = [this.root];
    while (stack.length > 0) {
      const node = stack.pop()!;
      if (node.value !== undefined) yield [node.topic!, node.value];
      for (const child of node.children.values()) stack.push(child);
    }
  }

  /**
   * Calls `visit` for each retained topic the filter matches. Topics starting with `$` are not
   * matched by a wildcard at the first level (MQTT 4.7.2). The walk keeps its own stack.
   */
  match(filter: string, visit: (topic: string, value: V) => void): void {
    const levels = filter.split('/');
    const stack: Array<[Node<V>, number]> = [[this.root, 0]];
    while (stack.length > 0) {
      const [node, depth] = stack.pop()!;
      if (depth === levels.length) {
        if (node.value !== undefined) visit(node.topic!, node.value);
        continue;
      }
      const level = levels[depth]!;
      const atRoot = depth === 0;
      if (level === '#') {
        // `a/#` matches `a` itself as well as everything below it.
        if (!atRoot && node.value !== undefined) visit(node.topic!, node.value);
        const subtree: Array<Node<V>> = [];
        for (const [key, child] of node.children) if (!(atRoot && key.startsWith('$'))) subtree.push(child);
        while (subtree.length > 0) {
          const n = subtree.pop()!;
          if (n.value !== undefined) visit(n.topic!, n.value);
          for (const child of n.children.values()) subtree.push(child);
        }
        continue;
      }
      if (level === '+') {
        for (const [key, child] of node.children) if (!(atRoot && key.startsWith('$'))) stack.push([child, depth + 1]);
        continue;
      }
      const child = node.children.get(level);
      if (child) stack.push([child, depth + 1]);
    }
  }
}
