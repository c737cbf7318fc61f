// Builds the OpenAPI 3.1 document from the route table: the same schemas that validate requests describe them.

/** @see https://spec.openapis.org/oas/v3.1.0 */

import { ERROR_SCHEMA, ROUTES, type JsonSchema, type RouteSpec } from './routes.js';

const errorResponse = (description: string): Record<string, unknown> => ({
  description,
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
});

function parameters(route: RouteSpec): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  const add = (where: 'path' | 'query', schema: JsonSchema | undefined): void => {
    const props = (schema?.['properties'] ?? {}) as Record<string, JsonSchema>;
    const required = new Set((schema?.['required'] ?? []) as string[]);
    for (const [name, s] of Object.entries(props)) {
      out.push({ name, in: where, required: where === 'path' || required.has(name), schema: s });
    }
  };
  add('path', route.params);
  add('query', route.query);
  return out;
}

function operation(route: RouteSpec): Record<string, unknown> {
  const responses: Record<string, unknown> = {};
  for (const [status, r] of Object.entries(route.responses)) {
    responses[status] = {
      description: r.description,
      content: { [r.contentType ?? 'application/json']: { schema: r.schema } },
    };
  }
  if (route.params !== undefined || route.query !== undefined || route.body !== undefined)
    responses['400'] = errorResponse('invalid request (the message names the field)');
  if (route.auth !== 'public') responses['401'] = errorResponse('not authenticated');
  if (Array.isArray(route.auth)) responses['403'] = errorResponse(`needs role ${route.auth.join(' or ')}`);
  if (route.params !== undefined) responses['404'] = errorResponse('not found');
  if (route.body !== undefined) {
    responses['413'] = errorResponse('body too large');
    responses['415'] = errorResponse('body is not application/json');
  }
  responses['default'] = errorResponse('error');
  const op: Record<string, unknown> = {
    operationId: route.operationId,
    summary: route.summary,
    parameters: parameters(route),
    responses,
    security: route.auth === 'public' ? [] : [{ bearer: [] }],
    'x-warden-roles': route.auth,
  };
  if (route.body !== undefined)
    op['requestBody'] = { required: true, content: { 'application/json': { schema: route.body } } };
  return op;
}

/** The OpenAPI document for `routes` (default: the admin API's route table). */
export function buildOpenApiDocument(routes: readonly RouteSpec[] = ROUTES): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const item = (paths[r.path] ??= {});
    item[r.method.toLowerCase()] = operation(r);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Warden admin API',
      version: '1',
      description:
        'Operate, approve and audit a Warden gateway. Bearer authentication with an API token or an OIDC JWT. ' +
        'Roles: viewer, approver, auditor, operator; no identity holds both operator and approver.',
    },
    paths,
    components: {
      schemas: { Error: ERROR_SCHEMA },
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'An API token (wdn_...) or an OIDC JWT.' },
      },
    },
  };
}
