/**
 * Schemas as the parser hands them over: plain JSON with `$ref`s already replaced by the objects they
 * point at (so a recursive schema is a cycle of objects) and an `x-parser-schema-id` on each.
 */

export type SchemaObject = Record<string, unknown>;

export function isSchemaObject(value: unknown): value is SchemaObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The parser's id for a schema: a component key, a `$id`, or `<anonymous-schema-N>`. */
export function parserSchemaId(schema: SchemaObject): string | undefined {
  const id = schema['x-parser-schema-id'];
  return typeof id === 'string' ? id : undefined;
}

/** Keys the generated code has no use for: the parser's bookkeeping, and ids that would clash once a schema is embedded twice. */
function dropped(key: string): boolean {
  return key.startsWith('x-parser-') || key === '$id' || key === '$schema';
}

const canonicalCache = new WeakMap<object, string>();

/**
 * A string that is equal for schemas with equal content, whatever the parser's ids. A message with
 * traits gets copies of its schemas (the parser merges the traits into a new object), and this is
 * how such a copy is recognised as the component schema it was copied from.
 */
export function canonicalKey(value: unknown, ancestors: object[] = []): string {
  if (typeof value !== 'object' || value === null) return JSON.stringify(value) ?? 'null';
  const cached = canonicalCache.get(value);
  if (cached !== undefined) return cached;
  const depth = ancestors.indexOf(value);
  if (depth >= 0) return `{"$cycle":${ancestors.length - depth}}`;
  const inner = [...ancestors, value];
  let key: string;
  if (Array.isArray(value)) key = `[${value.map((v) => canonicalKey(v, inner)).join(',')}]`;
  else {
    const entries = Object.keys(value)
      .filter((k) => !dropped(k))
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalKey((value as SchemaObject)[k], inner)}`);
    key = `{${entries.join(',')}}`;
  }
  // Only a key computed without ancestors is the same wherever the object is met.
  if (ancestors.length === 0) canonicalCache.set(value, key);
  return key;
}

/**
 * A copy of a schema fit to embed in generated code as JSON: parser keys, `$id` and `$schema` removed
 * (a validator is told the dialect by its caller, and two embedded copies must not claim one `$id`),
 * and each cycle turned back into a `$ref` to the enclosing schema by JSON pointer.
 */
export function embeddableSchema(schema: unknown): unknown {
  const path: Array<{ node: object; pointer: string }> = [];
  const copy = (value: unknown, pointer: string): unknown => {
    if (typeof value !== 'object' || value === null) return value;
    const ancestor = path.find((p) => p.node === value);
    if (ancestor) return { $ref: `#${ancestor.pointer}` };
    path.push({ node: value, pointer });
    let out: unknown;
    if (Array.isArray(value)) out = value.map((v, i) => copy(v, `${pointer}/${i}`));
    else {
      const object = Object.create(null) as SchemaObject; // so a property called __proto__ stays a property
      for (const [k, v] of Object.entries(value)) if (!dropped(k)) object[k] = copy(v, `${pointer}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`);
      out = object;
    }
    path.pop();
    return out;
  };
  return copy(schema, '');
}

/** Formats the parser can turn into types and validators: the AsyncAPI schema (a JSON Schema superset) and JSON Schema. */
const JSON_SCHEMA_FORMAT = /^application\/(vnd\.aai\.asyncapi(\+json|\+yaml)?|schema\+json|schema\+yaml)(;.*)?$/;

export function isJsonSchemaFormat(schemaFormat: string | undefined): boolean {
  return schemaFormat === undefined || JSON_SCHEMA_FORMAT.test(schemaFormat);
}

/** A multi-format schema (`{ schemaFormat, schema }`) holds its schema one level down. */
export function unwrapMultiFormat(json: unknown): unknown {
  if (isSchemaObject(json) && isSchemaObject(json['schema']) && typeof json['schemaFormat'] === 'string') return json['schema'];
  return json;
}

/** JSON laid out for reading: objects one key a line, short arrays of plain values on one line. */
export function formatJson(value: unknown, indent = ''): string {
  if (typeof value !== 'object' || value === null) return JSON.stringify(value) ?? 'null';
  const inner = `${indent}  `;
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    const flat = value.every((v) => typeof v !== 'object' || v === null) ? `[${value.map((v) => JSON.stringify(v) ?? 'null').join(', ')}]` : undefined;
    if (flat !== undefined && flat.length + indent.length <= 100) return flat;
    return `[\n${value.map((v) => `${inner}${formatJson(v, inner)}`).join(',\n')}\n${indent}]`;
  }
  const entries = Object.entries(value);
  if (entries.length === 0) return '{}';
  // In an object literal `"__proto__": x` sets the prototype; a computed key makes it a property, as in JSON.
  const key = (k: string): string => (k === '__proto__' ? `["__proto__"]` : JSON.stringify(k));
  return `{\n${entries.map(([k, v]) => `${inner}${key(k)}: ${formatJson(v, inner)}`).join(',\n')}\n${indent}}`;
}
