// MySQL/MariaDB built-in data: pure functions anyone may call, functions always denied, readable and settable system variables.
// @see https://mariadb.com/kb/en/built-in-functions/ and https://mariadb.com/kb/en/server-system-variables/

/**
 * Pure built-in functions (lower case). INVARIANT: nothing here reads files, sleeps, takes locks, waits for
 * replication, changes settings or sequences, or runs code outside the statement.
 */
export const MYSQL_SAFE_FUNCTIONS: ReadonlySet<string> = new Set(
  (
    'abs acos asin atan atan2 ceil ceiling conv cos cot crc32 degrees exp floor ln log log10 log2 mod pi pow power ' +
    'radians rand round sign sin sqrt tan truncate ascii bin bit_length char char_length character_length concat ' +
    'concat_ws elt export_set field find_in_set format from_base64 hex insert instr lcase left length locate lower ' +
    'lpad ltrim make_set mid oct octet_length ord position quote repeat replace reverse right rpad rtrim soundex ' +
    'space strcmp substr substring substring_index to_base64 trim ucase unhex upper regexp_replace regexp_instr ' +
    'regexp_substr regexp_like adddate addtime convert_tz curdate current_date current_time current_timestamp ' +
    'curtime date date_add date_format date_sub datediff day dayname dayofmonth dayofweek dayofyear extract ' +
    'from_days from_unixtime get_format hour last_day localtime localtimestamp makedate maketime microsecond ' +
    'minute month monthname now period_add period_diff quarter sec_to_time second str_to_date subdate subtime ' +
    'sysdate time time_format time_to_sec timediff timestamp timestampadd timestampdiff to_days to_seconds ' +
    'unix_timestamp utc_date utc_time utc_timestamp week weekday weekofyear year yearweek coalesce ifnull nullif ' +
    'if isnull greatest least interval md5 sha sha1 sha2 uuid json_extract json_object json_array json_unquote ' +
    'json_quote json_contains json_contains_path json_length json_keys json_valid json_type json_value ' +
    'json_query json_depth json_search json_set json_insert json_replace json_remove json_merge_patch ' +
    'json_merge_preserve json_pretty json_compact json_arrayagg json_objectagg count sum avg min max ' +
    'group_concat bit_and bit_or bit_xor bit_count std stddev stddev_pop stddev_samp var_pop var_samp variance ' +
    'row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value nth_value exists ' +
    'not_exists database schema version connection_id last_insert_id found_rows row_count user current_user ' +
    'session_user system_user charset collation coercibility cast convert values any_value inet_aton inet_ntoa ' +
    'inet6_aton inet6_ntoa is_ipv4 is_ipv6 uuid_to_bin bin_to_uuid char_length natural_sort_key'
  ).split(' '),
);

/** Functions never allowed, whatever the policy grants, with the reason a denial gives. */
export const MYSQL_DENIED_FUNCTIONS: ReadonlyMap<string, string> = new Map([
  ['load_file', 'reads files on the database server'],
  ['sleep', 'holds the connection (timing side channel, denial of service)'],
  ['benchmark', 'burns server CPU (timing side channel, denial of service)'],
  ['get_lock', 'takes a named lock shared by all sessions'],
  ['release_lock', 'releases a named lock shared by all sessions'],
  ['release_all_locks', 'releases named locks shared by all sessions'],
  ['is_free_lock', 'inspects named locks of other sessions'],
  ['is_used_lock', 'inspects named locks of other sessions'],
  ['master_pos_wait', 'waits on replication'],
  ['master_gtid_wait', 'waits on replication'],
  ['source_pos_wait', 'waits on replication'],
  ['wait_for_executed_gtid_set', 'waits on replication'],
  ['wait_until_sql_thread_after_gtids', 'waits on replication'],
  ['sys_exec', 'is a command-execution UDF'],
  ['sys_eval', 'is a command-execution UDF'],
  ['sys_get', 'is an environment-reading UDF'],
  ['sys_set', 'is an environment-changing UDF'],
  ['lib_mysqludf_sys_info', 'is a UDF of a command-execution library'],
  ['nextval', 'advances a sequence'],
  ['setval', 'changes a sequence'],
  ['lastval', 'reads sequence state'],
  ['name_const', 'is only meant for stored program internals'],
]);

/** System variables a statement may read (`@@x`, `@@session.x`), lower case. Others are denied by name. */
export const MYSQL_READABLE_VARIABLES: ReadonlySet<string> = new Set(
  (
    'version version_comment version_compile_os version_compile_machine autocommit sql_mode time_zone ' +
    'system_time_zone tx_isolation transaction_isolation tx_read_only transaction_read_only max_allowed_packet ' +
    'character_set_client character_set_connection character_set_results character_set_server ' +
    'character_set_database collation_connection collation_server collation_database lower_case_table_names ' +
    'auto_increment_increment auto_increment_offset wait_timeout interactive_timeout net_write_timeout ' +
    'net_read_timeout identity last_insert_id warning_count error_count sql_select_limit license ' +
    'max_execution_time max_statement_time default_storage_engine storage_engine group_concat_max_len ' +
    'div_precision_increment net_buffer_length performance_schema query_cache_size query_cache_type ' +
    'lc_messages lc_time_names innodb_lock_wait_timeout lock_wait_timeout sql_auto_is_null default_week_format ' +
    'explicit_defaults_for_timestamp in_transaction session_track_schema session_track_system_variables ' +
    'session_track_state_change'
  ).split(' '),
);

/**
 * Session variables any principal may SET (lower case); the analyser does not report them to the policy, like
 * PostgreSQL's harmless settings. Values must be constants.
 */
export const MYSQL_HARMLESS_SETTINGS: ReadonlySet<string> = new Set(
  (
    'autocommit time_zone transaction_isolation tx_isolation transaction_read_only tx_read_only wait_timeout ' +
    'interactive_timeout net_read_timeout net_write_timeout max_execution_time max_statement_time ' +
    'lock_wait_timeout innodb_lock_wait_timeout group_concat_max_len sql_select_limit div_precision_increment ' +
    'lc_time_names default_week_format sql_notes sql_warnings'
  ).split(' '),
);

/** Session variables no policy may let a client change, with the reason a denial gives. */
export const MYSQL_FORBIDDEN_SETTINGS: ReadonlyMap<string, string> = new Map([
  ['sql_mode', 'changes how the server reads SQL (ANSI_QUOTES, NO_BACKSLASH_ESCAPES) behind the analyser'],
  ['character_set_client', 'changes how the server decodes statement bytes behind the analyser'],
  ['character_set_connection', 'changes how the server decodes statement bytes behind the analyser'],
  ['character_set_results', 'changes how results are encoded'],
  ['collation_connection', 'changes how the server compares strings behind the analyser'],
  ['sql_log_bin', 'hides statements from the binary log'],
  ['sql_log_off', 'hides statements from the general log'],
  ['foreign_key_checks', 'disables referential integrity'],
  ['unique_checks', 'disables uniqueness checks'],
  ['pseudo_thread_id', 'impersonates another connection'],
  ['pseudo_slave_mode', 'changes replication behaviour'],
  ['gtid_domain_id', 'changes replication identity'],
  ['gtid_seq_no', 'changes replication identity'],
  ['server_id', 'changes replication identity'],
  ['timestamp', 'changes the server clock of the session'],
  ['insert_id', 'forces auto-increment values'],
  ['last_insert_id', 'forces auto-increment values'],
  ['max_allowed_packet', 'changes packet limits'],
  ['sql_safe_updates', 'changes write safety checks'],
  ['old_passwords', 'changes password hashing'],
  ['role', 'changes the database role'],
  ['default_role', 'changes the database role'],
  ['session_track_system_variables', 'changes what the protocol reports'],
]);

/** Character sets `SET NAMES` / `SET CHARACTER SET` may choose: ASCII-compatible, so quotes and backslashes stay bytes. */
export const MYSQL_SAFE_CHARSETS: ReadonlySet<string> = new Set([
  'utf8',
  'utf8mb3',
  'utf8mb4',
  'latin1',
  'ascii',
  'binary',
]);
