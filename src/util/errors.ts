/** Every error Eddy raises on purpose carries a stable code, so callers branch on codes, not on messages. */
export class EddyError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A bad command-line flag or configuration value: reported in one line, exit code 2. */
export class ConfigError extends EddyError {
  /** The command whose usage was wrong (`eddy broker`): the CLI prints it before the message instead of `eddy`. */
  readonly command: string | undefined;
  /** Lines that explain the message, printed under it (an AsyncAPI document's diagnostics). */
  readonly details: string[];
  constructor(message: string, options: { command?: string; details?: string[]; cause?: unknown } = {}) {
    super('EDDY_CONFIG', message, { cause: options.cause });
    this.command = options.command;
    this.details = options.details ?? [];
  }
}

/** A listener could not bind (port in use, permission denied). */
export class ListenError extends EddyError {
  constructor(message: string, cause?: unknown) {
    super('EDDY_LISTEN', message, { cause });
  }
}

/**
 * A protocol violation by a client. `reasonCode` is the MQTT 5 reason code sent in DISCONNECT
 * (or CONNACK) before the connection is closed; MQTT 3.1.1 clients just see the close.
 */
export class ProtocolError extends EddyError {
  readonly reasonCode: number;
  constructor(reasonCode: number, message: string) {
    super('EDDY_PROTOCOL', message);
    this.reasonCode = reasonCode;
  }
}

/** Storage could not do what was asked: disk full (EDDY_STORAGE_FULL), a write error, corruption. */
export class StorageError extends EddyError {
  constructor(code: string, message: string, cause?: unknown) {
    super(code, message, { cause });
  }
}
