import type { Message } from './message.js';
import type { IdentityRequirement, PublishRefusal, PublishValidator } from './validation.js';

/**
 * The validator the broker holds for its whole life, so that a reload (SIGHUP, `EddyServer.reload()`)
 * can put new AsyncAPI documents in force between two publishes without the broker knowing. With no
 * documents behind it, it accepts every publish and declares no channel, as no validator would.
 */
export class ReplaceableValidator implements PublishValidator {
  constructor(private current: PublishValidator | undefined) {}

  /** The documents' validator in force now, or undefined when there are none. */
  get active(): PublishValidator | undefined {
    return this.current;
  }

  replace(next: PublishValidator | undefined): void {
    this.current = next;
  }

  check(message: Message, strict: boolean): PublishRefusal | undefined {
    return this.current?.check(message, strict);
  }

  declares(topic: string): boolean {
    return this.current?.declares(topic) ?? false;
  }

  filterIsDeclared(filter: string): boolean {
    return this.current?.filterIsDeclared(filter) ?? false;
  }

  requiredIdentity(topicOrFilter: string, action: 'send' | 'receive'): IdentityRequirement | undefined {
    return this.current?.requiredIdentity(topicOrFilter, action);
  }
}
