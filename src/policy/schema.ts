// The policy language's JSON Schema (the one source of truth; schema/policy.schema.json is generated from it) and its ajv validator.
// @see https://json-schema.org/draft-07/json-schema-release-notes
// Regenerate the published file with: node --import tsx src/policy/schema.ts --write

import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import AjvModule from 'ajv';
import type { ErrorObject, ValidateFunction } from 'ajv';

const NAME = '^[A-Za-z_][A-Za-z0-9_.@-]*$';
const IDENT = '^[A-Za-z_][A-Za-z0-9_$]*$';
const IDENT_OR_STAR = '^([A-Za-z_][A-Za-z0-9_$]*|\\*)$';
const QUALIFIED = '^[A-Za-z_][A-Za-z0-9_$]*\\.[A-Za-z_][A-Za-z0-9_$]*$';
const QUALIFIED_OR_STAR = '^[A-Za-z_][A-Za-z0-9_$]*\\.([A-Za-z_][A-Za-z0-9_$]*|\\*)$';

const stringList = (pattern?: string) => ({
  type: 'array',
  items: pattern === undefined ? { type: 'string', minLength: 1 } : { type: 'string', pattern },
  uniqueItems: true,
});

const OPERATIONS = [
  'select',
  'insert',
  'update',
  'delete',
  'truncate',
  'merge',
  'create',
  'alter',
  'drop',
  'ddl',
  'copy_to',
  'copy_from',
  'execute',
  'notify',
];

const timeWindow = {
  type: 'object',
  additionalProperties: false,
  required: ['tz'],
  properties: {
    days: {
      type: 'array',
      items: { enum: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] },
      uniqueItems: true,
      minItems: 1,
    },
    from: { type: 'string', description: 'HH:MM, inclusive, local time; default 00:00' },
    to: {
      type: 'string',
      description: 'HH:MM, exclusive, local time (24:00 = end of day); before from = crosses midnight',
    },
    tz: { type: 'string', minLength: 1, description: 'IANA time zone, e.g. Europe/Paris' },
  },
};

/** A duration such as 30s, 15m, 2h, 7d. */
const DURATION = { type: 'string', pattern: '^[1-9][0-9]{0,5}(s|m|h|d)$' };

/** Approver groups and how many distinct people of each must approve (approval rules and access requests). */
const approverQuorum = {
  type: 'array',
  minItems: 1,
  items: {
    type: 'object',
    additionalProperties: false,
    required: ['group', 'count'],
    properties: {
      group: { type: 'string', pattern: NAME },
      count: { type: 'integer', minimum: 1, maximum: 100 },
    },
  },
};

/** The policy language, JSON Schema draft-07. */
export const POLICY_SCHEMA = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://warden.dev/schema/policy.schema.json',
  title: 'Warden access policy (one file; several files merge)',
  type: 'object',
  additionalProperties: false,
  required: ['version'],
  properties: {
    version: { const: 1 },
    users: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name'],
        properties: {
          name: { type: 'string', pattern: NAME },
          kind: { enum: ['human', 'service'] },
          groups: stringList(NAME),
          roles: stringList(NAME),
          attributes: {
            type: 'object',
            propertyNames: { pattern: IDENT },
            additionalProperties: { type: 'string' },
          },
        },
      },
    },
    groups: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name'],
        properties: {
          name: { type: 'string', pattern: NAME },
          description: { type: 'string' },
          roles: stringList(NAME),
        },
      },
    },
    roles: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name'],
        properties: {
          name: { type: 'string', pattern: NAME },
          description: { type: 'string' },
          grants: {
            type: 'array',
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['operations'],
              properties: {
                description: { type: 'string' },
                target: { type: 'string', minLength: 1, description: 'Warden target name or *' },
                database: { type: 'string', minLength: 1, description: 'upstream database name or *' },
                schema: { type: 'string', pattern: IDENT },
                table: { type: 'string', pattern: IDENT_OR_STAR },
                columns: { ...stringList(IDENT), minItems: 1 },
                operations: { type: 'array', items: { enum: OPERATIONS }, uniqueItems: true, minItems: 1 },
                functions: { ...stringList(QUALIFIED_OR_STAR), minItems: 1 },
                when: {
                  type: 'object',
                  additionalProperties: false,
                  properties: {
                    time: { oneOf: [timeWindow, { type: 'array', items: timeWindow, minItems: 1 }] },
                    sources: { ...stringList(), minItems: 1 },
                    environments: { ...stringList(), minItems: 1 },
                    principal_kind: { enum: ['human', 'service'] },
                  },
                },
              },
            },
          },
          row_filters: {
            type: 'array',
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['table', 'where'],
              properties: {
                table: { type: 'string', pattern: QUALIFIED },
                where: { type: 'string', minLength: 1 },
              },
            },
          },
        },
      },
    },
    masks: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['table', 'column', 'mask'],
        properties: {
          table: { type: 'string', pattern: QUALIFIED },
          column: { type: 'string', pattern: IDENT },
          mask: { enum: ['redact', 'partial', 'hash', 'null', 'expr'] },
          type: { type: 'string', minLength: 1 },
          keep_first: { type: 'integer', minimum: 0, maximum: 64 },
          keep_last: { type: 'integer', minimum: 0, maximum: 64 },
          salt: { type: 'string' },
          expr: { type: 'string', minLength: 1 },
          unmasked_for: stringList(NAME),
        },
      },
    },
    append_only: stringList(QUALIFIED),
    approvals: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'match', 'approvers'],
        properties: {
          name: { type: 'string', pattern: NAME },
          description: { type: 'string' },
          match: {
            type: 'object',
            additionalProperties: false,
            minProperties: 1,
            properties: {
              operations: { type: 'array', items: { enum: OPERATIONS }, uniqueItems: true, minItems: 1 },
              tables: { ...stringList(QUALIFIED_OR_STAR), minItems: 1 },
              environments: { ...stringList(), minItems: 1 },
              without_where: { type: 'boolean' },
            },
          },
          approvers: approverQuorum,
          mode: { enum: ['error', 'wait'] },
          ttl: DURATION,
          uses: { type: 'integer', minimum: 1, maximum: 1000 },
        },
      },
    },
    access_requests: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['role', 'requesters', 'approvers'],
        properties: {
          role: { type: 'string', pattern: NAME },
          description: { type: 'string' },
          requesters: { ...stringList(NAME), minItems: 1 },
          approvers: approverQuorum,
          max_duration: DURATION,
          break_glass: { type: 'boolean' },
        },
      },
    },
    settings: {
      type: 'object',
      additionalProperties: false,
      properties: { allow: stringList('^[A-Za-z_][A-Za-z0-9_.]*$') },
    },
  },
} as const;

/** The text of schema/policy.schema.json. */
export function schemaJsonText(): string {
  return JSON.stringify(POLICY_SCHEMA, null, 2) + '\n';
}

let validator: ValidateFunction | undefined;

/** Validates one parsed document; returns ajv's errors (empty when valid). */
export function validateDocument(data: unknown): ErrorObject[] {
  if (validator === undefined) {
    const Ajv = AjvModule.default;
    validator = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true }).compile(POLICY_SCHEMA);
  }
  return validator(data) ? [] : [...(validator.errors ?? [])];
}

if (
  process.argv[1] !== undefined &&
  fileURLToPath(import.meta.url) === process.argv[1] &&
  process.argv[2] === '--write'
) {
  const out = fileURLToPath(new URL('../../schema/policy.schema.json', import.meta.url));
  writeFileSync(out, schemaJsonText());
  console.log(`wrote ${out}`);
}
