import { docComment, isAnonymousId, pascalCase, propertyKey, schemaIdBase, stringLiteral, type NameTable } from './names.js';
import { canonicalKey, isSchemaObject, parserSchemaId, type SchemaObject } from './schema-data.js';

/**
 * Turns JSON Schemas (as the AsyncAPI parser hands them over) into TypeScript declarations.
 *
 * - objects become interfaces: `required` properties plain, the others optional; `additionalProperties`
 *   (a schema, or `true`) becomes an index signature, and an object with no properties a string map.
 *   When `additionalProperties` is absent the type lists the declared properties only: extra keys are
 *   allowed by the schema but not worth giving up typo checks for.
 * - `enum` and `const` become literal unions, `oneOf`/`anyOf` unions, `allOf` intersections;
 *   `not`, `format` and the numeric and string constraints have no type and are left to validation.
 * - a schema with a name (a component key or `$id`, which the parser puts in `x-parser-schema-id`)
 *   becomes an exported declaration of its own, and so does a copy of one (traits make copies).
 */
export class TypeWriter {
  private readonly declared = new Map<object, string>();
  /** Named schemas by content: a copy of one (traits copy a message's schemas) is the same type. */
  private readonly declaredByContent = new Map<string, { own: string; name: string }>();
  private readonly declarations: string[] = [];
  private readonly inProgress = new Set<object>();
  /** The names of the exported types, in the order they were declared. */
  readonly typeNames: string[] = [];
  readonly warnings: string[] = [];

  constructor(
    private readonly names: NameTable,
    /** Component schemas by canonical content: their names, for copies of them. */
    private readonly components: ReadonlyMap<string, string>,
  ) {}

  /** The declarations so far, in dependency order. */
  render(): string {
    return this.declarations.join('\n');
  }

  /** Declares `name` as an alias of another type (a message's payload that is a named schema). */
  alias(name: string, type: string, description?: string): void {
    this.typeNames.push(name);
    this.declarations.push(`${docComment(description)}export type ${name} = ${type};\n`);
  }

  /** Declares `schema` as an exported type named (about) `preferred` unless it has a name already; returns the type's name. */
  declare(schema: unknown, preferred: string, description?: string): string {
    if (isSchemaObject(schema)) {
      const known = this.declared.get(schema);
      if (known !== undefined) return known;
    }
    const name = this.names.claim(preferred);
    this.typeNames.push(name);
    if (!isSchemaObject(schema)) {
      this.declarations.push(`${docComment(description)}export type ${name} = ${this.expression(schema, '', name)};\n`);
      return name;
    }
    this.declared.set(schema, name);
    const body = this.body(schema, '', name);
    const comment = docComment(description ?? describe(schema));
    const isObjectType = body.startsWith('{') && body.endsWith('}') && !hasTopLevelOperator(body);
    this.declarations.push(isObjectType ? `${comment}export interface ${name} ${body}\n` : `${comment}export type ${name} = ${body};\n`);
    return name;
  }

  /** The type name of a schema that has one (declaring it on first use), else undefined. */
  reference(schema: unknown): string | undefined {
    if (!isSchemaObject(schema)) return undefined;
    const known = this.declared.get(schema);
    if (known !== undefined) return known;
    const own = this.ownName(schema);
    if (own === undefined) return undefined;
    const key = canonicalKey(schema);
    const same = this.declaredByContent.get(key);
    if (same !== undefined && same.own === own) {
      this.declared.set(schema, same.name);
      return same.name;
    }
    const name = this.declare(schema, own);
    this.declaredByContent.set(key, { own, name });
    return name;
  }

  /** A TypeScript type expression for `schema`, written at `indent`; `hint` names where it is, for warnings. */
  expression(schema: unknown, indent: string, hint: string): string {
    if (schema === undefined || schema === true) return 'unknown';
    if (schema === false) return 'never';
    if (!isSchemaObject(schema)) return 'unknown';
    const name = this.reference(schema);
    if (name !== undefined) return name;
    if (this.inProgress.has(schema)) {
      this.warnings.push(`${hint}: a recursive schema without a name (refer to a components.schemas entry to type it); typed unknown`);
      return 'unknown';
    }
    this.inProgress.add(schema);
    try {
      return this.body(schema, indent, hint);
    } finally {
      this.inProgress.delete(schema);
    }
  }

  private ownName(schema: SchemaObject): string | undefined {
    const id = parserSchemaId(schema);
    if (!isAnonymousId(id)) return pascalCase(schemaIdBase(id!));
    if (!hasDetail(schema)) return undefined;
    const component = this.components.get(canonicalKey(schema));
    return component === undefined ? undefined : pascalCase(component);
  }

  private body(schema: SchemaObject, indent: string, hint: string): string {
    const base = this.baseType(schema, indent, hint);
    const allOf = listOf(schema['allOf']).map((s, i) => this.expression(s, indent, `${hint}.allOf[${i}]`));
    const alternatives = [schema['oneOf'], schema['anyOf']]
      .filter((list): list is unknown[] => Array.isArray(list))
      .map((list) => union(list.map((s) => this.expression(s, indent, hint))));
    const combined = allOf.length + alternatives.length > 0;
    // `type: object` next to oneOf/allOf says nothing the alternatives do not say better.
    const parts = base === undefined || (combined && base.open) ? [] : [base.type];
    return intersection([...parts, ...allOf, ...alternatives]);
  }

  private baseType(schema: SchemaObject, indent: string, hint: string): { type: string; open: boolean } | undefined {
    if ('const' in schema) return { type: literal(schema['const']), open: false };
    if (Array.isArray(schema['enum'])) return { type: union(schema['enum'].map(literal)), open: false };
    const declared = schema['type'];
    const types = typeof declared === 'string' ? [declared] : Array.isArray(declared) ? declared.filter((t): t is string => typeof t === 'string') : inferTypes(schema);
    if (types.length === 0) return undefined;
    let open = false;
    const mapped = types.map((t) => {
      switch (t) {
        case 'string':
          return 'string';
        case 'number':
        case 'integer':
          return 'number';
        case 'boolean':
          return 'boolean';
        case 'null':
          return 'null';
        case 'array':
          return this.arrayType(schema, indent, hint);
        case 'object': {
          const object = this.objectType(schema, indent, hint);
          open = object.open && types.length === 1;
          return object.type;
        }
        default:
          return 'unknown';
      }
    });
    return { type: union(mapped), open };
  }

  private arrayType(schema: SchemaObject, indent: string, hint: string): string {
    const prefix = Array.isArray(schema['prefixItems']) ? schema['prefixItems'] : Array.isArray(schema['items']) ? schema['items'] : undefined;
    if (prefix === undefined) return `${parenthesize(this.expression(schema['items'], indent, `${hint}[]`))}[]`;
    // A tuple: the first minItems elements are there for sure; what follows is `items` (2020-12) or `additionalItems` (draft 7).
    const minItems = typeof schema['minItems'] === 'number' ? schema['minItems'] : 0;
    const rest = Array.isArray(schema['prefixItems']) ? schema['items'] : schema['additionalItems'];
    const elements = prefix.map((s, i) => `${parenthesize(this.expression(s, indent, `${hint}[${i}]`))}${i < minItems ? '' : '?'}`);
    if (rest !== false) elements.push(`...${parenthesize(this.expression(rest, indent, `${hint}[]`))}[]`);
    return `[${elements.join(', ')}]`;
  }

  private objectType(schema: SchemaObject, indent: string, hint: string): { type: string; open: boolean } {
    const inner = `${indent}  `;
    const properties = isSchemaObject(schema['properties']) ? schema['properties'] : {};
    const required = new Set(listOf(schema['required']).filter((r): r is string => typeof r === 'string'));
    const members: string[] = [];
    const memberTypes: string[] = [];
    let someOptional = false;
    for (const [key, value] of Object.entries(properties)) {
      const type = this.expression(value, inner, `${hint}.${key}`);
      const optional = !required.has(key);
      someOptional ||= optional;
      members.push(`${docComment(isSchemaObject(value) ? describe(value) : undefined, inner)}${inner}${propertyKey(key)}${optional ? '?' : ''}: ${type};`);
      memberTypes.push(type);
    }
    for (const key of required) {
      if (key in properties) continue;
      members.push(`${inner}${propertyKey(key)}: unknown;`);
      memberTypes.push('unknown');
    }
    const additional = schema['additionalProperties'];
    const patterns = isSchemaObject(schema['patternProperties']) ? Object.entries(schema['patternProperties']) : [];
    const patternTypes = patterns.map(([pattern, s]) => this.expression(s, inner, `${hint}[${pattern}]`));
    let extra: string[] | undefined;
    if (isSchemaObject(additional)) extra = [this.expression(additional, inner, `${hint}[*]`), ...patternTypes];
    else if (additional === false) extra = patternTypes.length > 0 ? patternTypes : undefined;
    else if (additional === true || members.length === 0) extra = ['unknown'];
    const open = members.length === 0 && additional === undefined && patterns.length === 0;
    if (extra !== undefined) {
      // An index signature must admit every declared property's type too.
      const values = union([...extra, ...(members.length > 0 ? memberTypes : []), ...(someOptional ? ['undefined'] : [])]);
      members.push(`${inner}[key: string]: ${values};`);
    } else if (members.length === 0) {
      members.push(`${inner}[key: string]: never;`);
    }
    return { type: `{\n${members.join('\n')}\n${indent}}`, open };
  }
}

function listOf(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

/** Without `type`, a schema with properties is an object and one with items an array. */
function inferTypes(schema: SchemaObject): string[] {
  if (['properties', 'additionalProperties', 'patternProperties', 'required'].some((k) => k in schema)) return ['object'];
  if ('items' in schema || 'prefixItems' in schema) return ['array'];
  return [];
}

/** Whether a schema says enough that two equal ones are likely the same schema, not two `{type: string}`s. */
function hasDetail(schema: SchemaObject): boolean {
  return ['properties', 'items', 'enum', 'const', 'oneOf', 'anyOf', 'allOf', 'description', 'title'].some((k) => k in schema);
}

function describe(schema: SchemaObject): string | undefined {
  const text = typeof schema['description'] === 'string' ? schema['description'] : typeof schema['title'] === 'string' ? schema['title'] : undefined;
  return schema['deprecated'] === true ? `${text ?? ''}\n@deprecated` : text;
}

/** A literal type: `'on'`, `3`, `null`; JSON is valid type syntax for object and array constants too. */
function literal(value: unknown): string {
  return typeof value === 'string' ? stringLiteral(value) : (JSON.stringify(value) ?? 'unknown');
}

function union(types: string[]): string {
  const distinct = [...new Set(types)].filter((t) => t !== 'never');
  if (distinct.includes('unknown')) return 'unknown';
  if (distinct.length === 0) return 'never';
  return distinct.join(' | ');
}

function intersection(types: string[]): string {
  const parts = [...new Set(types)].filter((t) => t !== 'unknown');
  if (parts.length === 0) return 'unknown';
  if (parts.length === 1) return parts[0]!;
  return parts.map(parenthesize).join(' & ');
}

function parenthesize(type: string): string {
  return hasTopLevelOperator(type) ? `(${type})` : type;
}

/** Whether `|` or `&` joins the type at its top level (outside brackets, string literals and doc comments). */
function hasTopLevelOperator(type: string): boolean {
  let depth = 0;
  for (let i = 0; i < type.length; i++) {
    const c = type[i];
    if (c === '/' && type[i + 1] === '*') {
      const end = type.indexOf('*/', i + 2);
      i = end < 0 ? type.length : end + 1;
    } else if (c === '"') {
      for (i++; i < type.length && type[i] !== '"'; i++) if (type[i] === '\\') i++;
    } else if (c === '{' || c === '[' || c === '(' || c === '<') depth++;
    else if (c === '}' || c === ']' || c === ')' || c === '>') depth--;
    else if ((c === '|' || c === '&') && depth === 0) return true;
  }
  return false;
}
