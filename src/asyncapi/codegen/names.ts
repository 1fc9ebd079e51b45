/**
 * Identifiers for generated code: document ids and addresses are free text (`user/signedup`,
 * `AUTHORIZATION_REVOCATION`, `https://example.com/user.json`), TypeScript names are not.
 */

/** Words of an id: runs of letters and digits; an all-capitals word (`REVOCATION`, `ID`) is one word in any case. */
function words(text: string): string[] {
  return text
    .split(/[^\p{L}\p{N}]+/u)
    .filter((w) => w.length > 0)
    .map((w) => (w.length > 1 && w === w.toUpperCase() && /\p{L}/u.test(w) ? w.charAt(0) + w.slice(1).toLowerCase() : w));
}

/** A leading digit cannot start an identifier. */
function startable(name: string): string {
  return /^\p{N}/u.test(name) ? `_${name}` : name;
}

/** `lightMeasuredPayload` → `LightMeasuredPayload`, `user/signed-up` → `UserSignedUp`; inner capitals are kept. */
export function pascalCase(text: string, fallback = 'Anonymous'): string {
  const joined = words(text)
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join('');
  return startable(joined || fallback);
}

/** `publish-signup` → `publishSignup`, `SendUser` → `sendUser`, `AUTH_REVOKE` → `authRevoke`. */
export function camelCase(text: string, fallback = 'operation'): string {
  const [first, ...rest] = words(text);
  if (first === undefined) return fallback;
  const head = first.charAt(0).toLowerCase() + first.slice(1);
  return startable(head + rest.map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join(''));
}

/**
 * The readable part of a schema id: a `$id` URL or URN names a schema by its last segment
 * (`https://example.com/schemas/user.json` → `user`); component keys are used as they are.
 */
export function schemaIdBase(id: string): string {
  if (!/[/:#]/.test(id)) return id;
  const last = id.split(/[/:#]/).filter((s) => s.length > 0).pop() ?? id;
  return last.replace(/\.(json|ya?ml|avsc|schema)$/i, '');
}

/** Whether `id` is one the parser made up for a schema that has no name of its own. */
export function isAnonymousId(id: string | undefined): boolean {
  return id === undefined || /^<anonymous-[a-z]+-\d+>$/.test(id);
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** An object key as written in a type or literal: bare when it is an identifier, else quoted. */
export function propertyKey(name: string): string {
  return IDENTIFIER.test(name) ? name : stringLiteral(name);
}

/** A single-quoted string literal. */
export function stringLiteral(text: string): string {
  return `'${JSON.stringify(text).slice(1, -1).replace(/\\"/g, '"').replace(/'/g, "\\'")}'`;
}

/** `/** … *\/` lines for a description, or nothing; `*\/` inside the text must not end the comment. */
export function docComment(text: string | undefined, indent = ''): string {
  const lines = (text ?? '')
    .trim()
    .replace(/\*\//g, '*\\/')
    .split(/\r?\n/)
    .map((l) => l.trimEnd());
  if (lines.length === 1 && lines[0] === '') return '';
  if (lines.length === 1) return `${indent}/** ${lines[0]} */\n`;
  return `${indent}/**\n${lines.map((l) => `${indent} *${l ? ` ${l}` : ''}`).join('\n')}\n${indent} */\n`;
}

/**
 * Hands out unique names in one scope. A name the generated runtime (or TypeScript) already uses
 * gets a `Type` suffix (a schema called `Promise` becomes `PromiseType`); a name given out before
 * gets a number (`Order2`), so two document ids that read the same never share a declaration.
 */
export class NameTable {
  private readonly taken = new Set<string>();

  constructor(private readonly reserved: ReadonlySet<string>) {}

  claim(preferred: string): string {
    let base = preferred;
    if (this.reserved.has(base)) base = `${base}Type`;
    let name = base;
    for (let n = 2; this.taken.has(name) || this.reserved.has(name); n++) name = `${base}${n}`;
    this.taken.add(name);
    return name;
  }
}
