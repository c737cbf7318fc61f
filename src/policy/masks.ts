// Column masks: the SQL expression that replaces a masked column in what the client reads (the rewriter splices it in).

import { quoteIdent, renderMaskTemplate, sqlLiteral } from './template.js';
import type { Template } from './template.js';

export type MaskSpec =
  | { readonly kind: 'redact'; readonly type?: string }
  | { readonly kind: 'partial'; readonly keepFirst: number; readonly keepLast: number }
  | { readonly kind: 'hash'; readonly salt?: string }
  | { readonly kind: 'null'; readonly type?: string }
  | { readonly kind: 'expr'; readonly template: Template };

/** Type names a mask may cast to: a plain (optionally schema-qualified) type, an optional modifier and array suffix. */
export const TYPE_HINT =
  /^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?( [a-z_][a-z0-9_]*){0,3}(\([0-9]{1,4}(, ?[0-9]{1,4})?\))?(\[\])?$/;

const TEXT_TYPES = new Set([
  'text',
  'varchar',
  'character varying',
  'char',
  'character',
  'bpchar',
  'name',
  'citext',
]);

/** Whether a type hint names a text-like type (for which redaction keeps a visible '***'). */
export function isTextType(type: string): boolean {
  return TEXT_TYPES.has(type.replace(/\(.*$/, '').trim());
}

/**
 * The SQL expression that shows a masked column. `columnSql` is the column reference (quoted, maybe qualified).
 * INVARIANT: the expression never reveals more than the spec allows: partial masks of short values hide everything.
 */
export function maskSql(spec: MaskSpec, columnSql: string): string {
  const asText = `(${columnSql})::text`;
  switch (spec.kind) {
    case 'redact': {
      const type = spec.type ?? 'text';
      if (isTextType(type)) return `CASE WHEN ${columnSql} IS NULL THEN NULL ELSE CAST('***' AS ${type}) END`;
      return `CAST(NULL AS ${type})`;
    }
    case 'null':
      return spec.type === undefined ? 'NULL' : `CAST(NULL AS ${spec.type})`;
    case 'hash': {
      const input = spec.salt === undefined ? asText : `${sqlLiteral(spec.salt)} || ${asText}`;
      return `encode(sha256(convert_to(${input}, 'UTF8')), 'hex')`;
    }
    case 'partial': {
      const keep = spec.keepFirst + spec.keepLast;
      const len = `length(${asText})`;
      const shown: string[] = [];
      if (spec.keepFirst > 0) shown.push(`left(${asText}, ${spec.keepFirst})`);
      shown.push(`repeat('*', ${len} - ${keep})`);
      if (spec.keepLast > 0) shown.push(`right(${asText}, ${spec.keepLast})`);
      return (
        `CASE WHEN ${columnSql} IS NULL THEN NULL ` +
        `WHEN ${len} <= ${keep} THEN repeat('*', ${len}) ` +
        `ELSE ${shown.join(' || ')} END`
      );
    }
    case 'expr':
      return renderMaskTemplate(spec.template, columnSql);
  }
}

/** The mask expression for a bare column name (what Decision.protections carries). */
export function maskSqlForColumn(spec: MaskSpec, column: string): string {
  return maskSql(spec, quoteIdent(column));
}
