import type { Message } from '../../core/message.js';

/**
 * Where the disk engine stored each message: the engine's own fact, kept beside the core's
 * Message rather than on it. A queue needs it to know from where a restart must look for what it
 * still owes. Weak keys: a message nothing holds any more takes its entry with it.
 */
export class LogPositions {
  private readonly byMessage = new WeakMap<Message, number>();

  set(message: Message, position: number): void {
    this.byMessage.set(message, position);
  }

  get(message: Message): number | undefined {
    return this.byMessage.get(message);
  }
}
