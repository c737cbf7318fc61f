// Built-in data the evaluator consults besides grants: readable system catalogs, harmless settings, statement kinds.
// @see https://www.postgresql.org/docs/current/catalogs.html
// @see https://www.postgresql.org/docs/current/runtime-config-client.html

/**
 * pg_catalog relations anyone holding a role on the target may SELECT: what psql's \d family and drivers' type
 * lookups read. Nothing here exposes secrets (pg_roles and pg_user show '********' for passwords), other
 * sessions' query text, or table contents (column statistics hold sample values).
 */
export const READABLE_CATALOGS: ReadonlySet<string> = new Set([
  'pg_aggregate',
  'pg_am',
  'pg_amop',
  'pg_amproc',
  'pg_attrdef',
  'pg_attribute',
  'pg_auth_members',
  'pg_cast',
  'pg_class',
  'pg_collation',
  'pg_constraint',
  'pg_conversion',
  'pg_database',
  'pg_default_acl',
  'pg_depend',
  'pg_description',
  'pg_enum',
  'pg_event_trigger',
  'pg_extension',
  'pg_foreign_data_wrapper',
  'pg_foreign_server',
  'pg_foreign_table',
  'pg_index',
  'pg_inherits',
  'pg_language',
  'pg_namespace',
  'pg_opclass',
  'pg_operator',
  'pg_opfamily',
  'pg_partitioned_table',
  'pg_policy',
  'pg_proc',
  'pg_publication',
  'pg_publication_namespace',
  'pg_publication_rel',
  'pg_publication_tables',
  'pg_range',
  'pg_rewrite',
  'pg_roles',
  'pg_user',
  'pg_sequence',
  'pg_sequences',
  'pg_settings',
  'pg_shdescription',
  'pg_statistic_ext',
  'pg_tablespace',
  'pg_trigger',
  'pg_ts_config',
  'pg_ts_dict',
  'pg_ts_parser',
  'pg_ts_template',
  'pg_type',
  'pg_tables',
  'pg_views',
  'pg_matviews',
  'pg_indexes',
  'pg_timezone_names',
  'pg_timezone_abbrevs',
  'pg_available_extensions',
  'pg_cursors',
  'pg_prepared_statements',
  'pg_shdepend',
  'pg_init_privs',
  'pg_seclabel',
  'pg_shseclabel',
  'pg_transform',
]);

/** pg_catalog relations never readable, with the reason a denial gives. Anything on neither list is denied too. */
export const DENIED_CATALOGS: ReadonlyMap<string, string> = new Map([
  ['pg_authid', 'holds password hashes'],
  ['pg_shadow', 'holds password hashes'],
  ['pg_user_mapping', 'holds foreign-server credentials'],
  ['pg_user_mappings', 'holds foreign-server credentials'],
  ['pg_statistic', 'holds sample values of table columns'],
  ['pg_stats', 'holds sample values of table columns'],
  ['pg_stats_ext', 'holds sample values of table columns'],
  ['pg_stats_ext_exprs', 'holds sample values of table columns'],
  ['pg_statistic_ext_data', 'holds sample values of table columns'],
  ['pg_largeobject', 'holds large object contents'],
  ['pg_largeobject_metadata', 'lists large objects'],
  ['pg_stat_activity', "shows other sessions' query text"],
  ['pg_stat_statements', "shows other sessions' query text"],
  ['pg_hba_file_rules', 'shows server authentication rules'],
  ['pg_ident_file_mappings', 'shows server authentication rules'],
  ['pg_file_settings', 'shows server configuration files'],
  ['pg_subscription', 'holds connection strings'],
  ['pg_replication_slots', 'shows replication state'],
  ['pg_stat_replication', 'shows replication state'],
  ['pg_config', 'shows server build paths'],
]);

/** information_schema views readable to any principal holding a role on the target (drivers' metadata). */
export const READABLE_INFORMATION_SCHEMA: ReadonlySet<string> = new Set([
  'schemata',
  'tables',
  'columns',
  'views',
  'table_constraints',
  'key_column_usage',
  'referential_constraints',
  'constraint_column_usage',
  'check_constraints',
  'routines',
  'parameters',
  'sequences',
  'element_types',
  'domains',
  'character_sets',
  'collations',
  'triggers',
  'table_privileges',
  'column_privileges',
  'enabled_roles',
  'applicable_roles',
  'attributes',
  'user_defined_types',
]);

/** Schemas whose relations are decided by the lists above, never by grants. */
export const SYSTEM_SCHEMAS: ReadonlySet<string> = new Set(['pg_catalog', 'information_schema', 'pg_toast']);

/**
 * Settings any principal may SET or RESET (lower case). Everything else is denied unless the policy's
 * `settings.allow` adds it; the names in FORBIDDEN_SETTINGS can never be added.
 */
export const HARMLESS_SETTINGS: ReadonlySet<string> = new Set([
  'application_name',
  'statement_timeout',
  'lock_timeout',
  'idle_in_transaction_session_timeout',
  'idle_session_timeout',
  'client_encoding',
  'datestyle',
  'intervalstyle',
  'timezone',
  'extra_float_digits',
  'client_min_messages',
  'bytea_output',
  'lc_monetary',
  'lc_numeric',
  'lc_time',
  'default_transaction_isolation',
  'default_transaction_read_only',
  'transaction_isolation',
  'transaction_read_only',
  'transaction_deferrable',
  'default_transaction_deferrable',
  'xmloption',
  'xmlbinary',
  'geqo',
  'work_mem',
  'enable_seqscan',
  'enable_indexscan',
  'enable_bitmapscan',
  'enable_hashjoin',
  'enable_mergejoin',
  'enable_nestloop',
  'jit',
  'max_parallel_workers_per_gather',
  'random_page_cost',
  'cursor_tuple_fraction',
  'default_statistics_target',
  'constraint_exclusion',
  'plan_cache_mode',
  'gin_fuzzy_search_limit',
  'join_collapse_limit',
  'from_collapse_limit',
  'array_nulls',
  'quote_all_identifiers',
]);

/** Settings no policy may allow: they change who the session is or how names resolve, or weaken SQL quoting. */
export const FORBIDDEN_SETTINGS: ReadonlyMap<string, string> = new Map([
  ['role', 'changes the database role'],
  ['session_authorization', 'changes the database role'],
  ['search_path', 'changes how names resolve (the analyser pins it)'],
  ['standard_conforming_strings', 'changes how string literals are read'],
  ['backslash_quote', 'changes how string literals are read'],
  ['escape_string_warning', 'changes how string literals are read'],
  ['row_security', 'could bypass row-level security'],
  ['session_replication_role', 'disables triggers and rules'],
  ['default_tablespace', 'changes where objects are created'],
  ['temp_tablespaces', 'changes where objects are created'],
  ['local_preload_libraries', 'loads code'],
  ['session_preload_libraries', 'loads code'],
  ['check_function_bodies', 'changes DDL checks'],
  ['allow_system_table_mods', 'modifies system catalogs'],
]);

/**
 * Statement kinds (libpg-query node names) allowed with no relation access: transaction control, SHOW, LISTEN,
 * cursors, prepared statements, DISCARD, and SET (whose settings are checked one by one).
 */
export const UTILITY_KINDS: ReadonlySet<string> = new Set([
  'TransactionStmt',
  'VariableShowStmt',
  'VariableSetStmt',
  'ListenStmt',
  'UnlistenStmt',
  'DiscardStmt',
  'DeallocateStmt',
  'DeclareCursorStmt',
  'FetchStmt',
  'ClosePortalStmt',
  'PrepareStmt',
  'ExecuteStmt',
]);

/** Statement kinds whose meaning lies in their relation and function accesses (each access is decided). */
export const ACCESS_KINDS: ReadonlySet<string> = new Set([
  'SelectStmt',
  'InsertStmt',
  'UpdateStmt',
  'DeleteStmt',
  'MergeStmt',
  'CopyStmt',
  'CallStmt',
  'ExplainStmt',
  'PLAssignStmt',
]);

/** DDL statement kinds: they must report at least one relation access, else the analyser missed the object. */
export const DDL_KINDS: ReadonlySet<string> = new Set([
  'CreateStmt',
  'CreateTableAsStmt',
  'AlterTableStmt',
  'DropStmt',
  'IndexStmt',
  'ViewStmt',
  'RenameStmt',
  'TruncateStmt',
  'CreateSeqStmt',
  'AlterSeqStmt',
  'CommentStmt',
  'CreateTrigStmt',
  'RuleStmt',
  'RefreshMatViewStmt',
]);

/** NOTIFY needs a role with the `notify` operation: it reaches other sessions sharing the upstream database. */
export const NOTIFY_KIND = 'NotifyStmt';
