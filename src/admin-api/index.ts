// The admin API's public surface: the server factory, its configuration, providers, metrics, tokens and JWT checks.

export {
  startAdminApi,
  describeValidationError,
  DEFAULT_ADMIN_HOST,
  DEFAULT_ADMIN_PORT,
  DEFAULT_MAX_BODY_BYTES,
} from './server.js';
export type { AdminApi, AdminApiOptions, AdminOidcOptions, RequestLogRecord } from './server.js';
export { loadAdminApiConfig } from './config.js';
export type { AdminApiConfig } from './config.js';
export { ApiError, verifyJson } from './handlers.js';
export { buildOpenApiDocument } from './openapi.js';
export { ROUTES } from './routes.js';
export type { RouteSpec, OperationId } from './routes.js';
export {
  Metrics,
  Counter,
  Gauge,
  Histogram,
  createWardenMetrics,
  METRICS_CONTENT_TYPE,
  DEFAULT_BUCKETS,
} from './metrics.js';
export type { WardenMetrics } from './metrics.js';
export { API_ROLES, EXCLUSIVE_ROLES, assertSeparation, conflictingRoles } from './roles.js';
export type { ApiRole } from './roles.js';
export {
  TokenStore,
  createApiToken,
  hashToken,
  loadTokenFile,
  parseTokenRecords,
  tokenRecordToJson,
} from './tokens.js';
export type { ApiTokenRecord } from './tokens.js';
export { verifyJwt, parseJwks, loadJwksFile } from './jwt.js';
export type { OidcSettings, JwksKey } from './jwt.js';
export { listLiveSessions, sessionView } from './gateway-sessions.js';
export type * from './providers.js';
export { approvalsFromService, approvalView } from './approvals-adapter.js';
export {
  gatewayProviders,
  auditProvider,
  sessionsProvider,
  policyProvider,
  composedApprovals,
  readinessChecks,
  tcpReachable,
} from './gateway-providers.js';
export type { GatewaySource, GatewayProvidersOptions, BundleHistoryItem } from './gateway-providers.js';
export { meteredHook, sessionMetricsEvents, timedAppender, decisionLabel } from './gateway-metrics.js';
export { addTokenToFile, parseExpiry, parseRoles, readTokenRecords } from './token-file.js';
