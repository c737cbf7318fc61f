// How a Warden SQLSTATE reaches a MySQL client: the server error number and SQLSTATE an ERR packet carries.
// @see https://dev.mysql.com/doc/mysql-errors/8.0/en/server-error-reference.html

import { ER } from './constants.js';

export interface MysqlErrorCode {
  readonly errno: number;
  readonly sqlstate: string;
}

/**
 * The mapping (documented in docs/mysql-front-end.md):
 * - 42501 policy denial → 1142 ER_TABLEACCESS_DENIED_ERROR, SQLSTATE 42000 (the message names the rule)
 * - 42601 parse failure → 1064 ER_PARSE_ERROR, 42000
 * - WA001 approval required → 1644 ER_SIGNAL_EXCEPTION with SQLSTATE WA001, exactly what `SIGNAL SQLSTATE
 *   'WA001'` would produce, so clients show and test the Warden code
 * - 28000 / 28P01 → 1045 ER_ACCESS_DENIED_ERROR, 28000
 * - 3D000 → 1049 ER_BAD_DB_ERROR, 42000
 * - 0A000 → 1235 ER_NOT_SUPPORTED_YET, 42000
 * - 57014 → 1317 ER_QUERY_INTERRUPTED, 70100
 * - 57P01 → 1053 ER_SERVER_SHUTDOWN, 08S01
 * - 53300 → 1040 ER_CON_COUNT_ERROR, 08004
 * - 08xxx (protocol, upstream) → 1158 ER_NET_READ_ERROR, 08S01
 * - anything else (58030 audit, XX000, F0000) → 1105 ER_UNKNOWN_ERROR, HY000
 */
export function mysqlErrorFor(sqlstate: string): MysqlErrorCode {
  switch (sqlstate) {
    case '42501':
      return { errno: ER.TABLEACCESS_DENIED, sqlstate: '42000' };
    case '42601':
      return { errno: ER.PARSE, sqlstate: '42000' };
    case 'WA001':
      return { errno: ER.SIGNAL_EXCEPTION, sqlstate: 'WA001' };
    case '28000':
    case '28P01':
      return { errno: ER.ACCESS_DENIED, sqlstate: '28000' };
    case '3D000':
      return { errno: ER.BAD_DB, sqlstate: '42000' };
    case '0A000':
      return { errno: ER.NOT_SUPPORTED_YET, sqlstate: '42000' };
    case '57014':
      return { errno: ER.QUERY_INTERRUPTED, sqlstate: '70100' };
    case '57P01':
      return { errno: ER.SERVER_SHUTDOWN, sqlstate: '08S01' };
    case '53300':
      return { errno: ER.CON_COUNT, sqlstate: '08004' };
    default:
      if (sqlstate.startsWith('08')) return { errno: ER.NET_READ_ERROR, sqlstate: '08S01' };
      return { errno: ER.UNKNOWN, sqlstate: 'HY000' };
  }
}
