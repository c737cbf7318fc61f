// Bypass corpus data: the schema, seed rows holding canary values, and the superuser-side state digest.
//
// Every protected value carries a unique random token (12 hex digits). A token is what the runner searches for in
// the client's bytes, so SQL texts in the cases may name prefixes such as 'CANARY-SSN-' without ever matching.
import { randomBytes } from 'node:crypto';

export type CanaryKind = 'ssn' | 'email' | 'secret' | 'name' | 'file' | 'activity';

export interface Canary {
  readonly kind: CanaryKind;
  /** The unique token searched for in everything the client receives. */
  readonly token: string;
  /** The full value stored in the database. */
  readonly value: string;
}

export interface Customer {
  readonly id: number;
  readonly name: string;
  readonly email: string;
  readonly ssn: string;
  readonly tenant: number;
}

export interface Seed {
  readonly customers: readonly Customer[];
  readonly secrets: readonly { id: number; value: string }[];
  readonly canaries: readonly Canary[];
  /** Content of `corpus_canary.txt` in the data folder (a target for pg_read_file and friends). */
  readonly fileCanary: Canary;
  /** Text of the query an idle superuser session leaves in pg_stat_activity. */
  readonly activityCanary: Canary;
}

const token = (): string => randomBytes(6).toString('hex');

const TENANT1_NAMES = ['Ada Lovelace', 'Alan Turing', 'Grace Hopper', 'Edsger Dijkstra'];

/** Fresh random canaries for one run (so a stale file or log from an earlier run can never satisfy a check). */
export function makeSeed(): Seed {
  const canaries: Canary[] = [];
  const add = (kind: CanaryKind, value: (t: string) => string): string => {
    const t = token();
    const v = value(t);
    canaries.push({ kind, token: t, value: v });
    return v;
  };
  const customers: Customer[] = [];
  for (let i = 0; i < 8; i++) {
    const tenant = i < 4 ? 1 : 2;
    const name = tenant === 1 ? (TENANT1_NAMES[i] as string) : add('name', (t) => `CANARY-NAME-${t}`);
    // INVARIANT: the partial mask keeps the last 4 characters; they are plain digits, never part of the token.
    const ssn = add('ssn', (t) => `CANARY-SSN-${t}-${String(1000 + i)}`);
    const email = add('email', (t) => `canary-${t}@mail.test`);
    customers.push({ id: i + 1, name, email, ssn, tenant });
  }
  const secrets = [1, 2, 3].map((id) => ({ id, value: add('secret', (t) => `CANARY-SECRET-${t}`) }));
  const fileT = token();
  const fileCanary: Canary = { kind: 'file', token: fileT, value: `CANARY-FILE-${fileT}` };
  const actT = token();
  const activityCanary: Canary = { kind: 'activity', token: actT, value: `CANARY-ACT-${actT}` };
  canaries.push(fileCanary, activityCanary);
  return { customers, secrets, canaries, fileCanary, activityCanary };
}

const lit = (s: string): string => `'${s.replace(/'/g, "''")}'`;

/** Schema and rows, run as the superuser in the corpus database before the gateway starts. */
export function seedSql(seed: Seed, dataDir: string): string {
  const customers = seed.customers
    .map((c) => `(${c.id}, ${lit(c.name)}, ${lit(c.email)}, ${lit(c.ssn)}, ${c.tenant})`)
    .join(',\n  ');
  const secrets = seed.secrets.map((s) => `(${s.id}, ${lit(s.value)})`).join(', ');
  return `
CREATE TABLE public.customers (id int PRIMARY KEY, name text NOT NULL, email text, ssn text, tenant_id int NOT NULL);
CREATE TABLE public.orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES public.customers(id),
  amount numeric(10,2) NOT NULL, note text);
CREATE TABLE public.ledger (id bigserial PRIMARY KEY, account text NOT NULL, amount numeric(10,2) NOT NULL);
CREATE TABLE public.secrets (id int PRIMARY KEY, value text NOT NULL);
INSERT INTO public.customers VALUES
  ${customers};
INSERT INTO public.orders
  SELECT g, 1 + (g % 8), (g * 7 % 100) + 0.5, 'order ' || g FROM generate_series(1, 40) g;
INSERT INTO public.ledger (account, amount) SELECT 'acct-' || (g % 3), g FROM generate_series(1, 10) g;
INSERT INTO public.secrets VALUES ${secrets};
CREATE FUNCTION public.order_total(cid int) RETURNS numeric LANGUAGE sql STABLE
  AS $$ SELECT coalesce(sum(amount), 0) FROM public.orders WHERE customer_id = cid $$;
CREATE FUNCTION public.reveal_secret(i int) RETURNS text LANGUAGE sql STABLE SECURITY DEFINER
  AS $$ SELECT value FROM public.secrets WHERE id = i $$;
CREATE FUNCTION public.purge_ledger() RETURNS void LANGUAGE sql AS $$ DELETE FROM public.ledger $$;
CREATE PROCEDURE public.reset_orders() LANGUAGE sql AS $$ DELETE FROM public.orders $$;
CREATE VIEW public.customer_view AS SELECT * FROM public.customers;
CREATE EXTENSION IF NOT EXISTS dblink;
ANALYZE;
COPY (SELECT ${lit(seed.fileCanary.value)}) TO ${lit(`${dataDir}/corpus_canary.txt`)};
${DIGEST_FUNCTION}
`;
}

/**
 * A digest of everything a denied statement could have changed: every row of every user table and sequence,
 * the catalogs that record objects, roles, rules, triggers, settings, large objects, locks and prepared
 * transactions, and the top level of the data folder (COPY TO a file, ALTER SYSTEM, COPY FROM PROGRAM).
 * INVARIANT: with autovacuum off, nothing in it changes unless a statement changed the database.
 */
const DIGEST_FUNCTION = `
CREATE SCHEMA corpus_check;
CREATE FUNCTION corpus_check.digest() RETURNS text LANGUAGE plpgsql AS $fn$
DECLARE
  r record;
  h text;
  acc text := '';
BEGIN
  FOR r IN
    SELECT c.oid::regclass::text AS rel, c.relkind
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'corpus_check')
       AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
       AND c.relkind IN ('r', 'p', 'S', 'm')
     ORDER BY 1
  LOOP
    IF r.relkind = 'S' THEN
      EXECUTE format('SELECT md5(last_value::text || is_called::text) FROM %s', r.rel) INTO h;
    ELSE
      EXECUTE format('SELECT md5(coalesce(string_agg(t::text, E''\\n'' ORDER BY t::text), '''')) FROM %s t', r.rel)
        INTO h;
    END IF;
    acc := acc || r.rel || '=' || h || E'\\n';
  END LOOP;
  acc := acc || E'\\n' || 'class=' || (SELECT md5(string_agg(concat_ws('|', oid, relname, relnamespace, relkind, relowner,
      relacl, relrowsecurity, relfilenode, relpersistence, relhastriggers, relhasrules), ',' ORDER BY oid)) FROM pg_class);
  acc := acc || E'\\n' || 'proc=' || (SELECT md5(string_agg(concat_ws('|', oid, proname, pronamespace, proowner, proacl,
      prosecdef, md5(prosrc), proconfig), ',' ORDER BY oid)) FROM pg_proc);
  acc := acc || E'\\n' || 'authid=' || (SELECT md5(string_agg(a::text, ',' ORDER BY a.oid)) FROM pg_authid a);
  acc := acc || E'\\n' || 'members=' || (SELECT md5(coalesce(string_agg(m::text, ',' ORDER BY m::text), '')) FROM pg_auth_members m);
  acc := acc || E'\\n' || 'database=' || (SELECT md5(string_agg(concat_ws('|', oid, datname, datdba, datacl, datallowconn,
      datconnlimit), ',' ORDER BY oid)) FROM pg_database);
  acc := acc || E'\\n' || 'dbrole=' || (SELECT md5(coalesce(string_agg(s::text, ',' ORDER BY s::text), '')) FROM pg_db_role_setting s);
  acc := acc || E'\\n' || 'rewrite=' || (SELECT md5(string_agg(concat_ws('|', oid, rulename, ev_class, ev_type, ev_enabled),
      ',' ORDER BY oid)) FROM pg_rewrite);
  acc := acc || E'\\n' || 'trigger=' || (SELECT md5(coalesce(string_agg(concat_ws('|', oid, tgname, tgrelid, tgfoid, tgenabled),
      ',' ORDER BY oid), '')) FROM pg_trigger);
  acc := acc || E'\\n' || 'evttrigger=' || (SELECT count(*) FROM pg_event_trigger);
  acc := acc || E'\\n' || 'namespace=' || (SELECT md5(string_agg(n::text, ',' ORDER BY n.oid)) FROM pg_namespace n);
  acc := acc || E'\\n' || 'extension=' || (SELECT md5(string_agg(e::text, ',' ORDER BY e.oid)) FROM pg_extension e);
  acc := acc || E'\\n' || 'type=' || (SELECT md5(string_agg(t.oid::text || t.typname, ',' ORDER BY t.oid)) FROM pg_type t);
  acc := acc || E'\\n' || 'attribute=' || (SELECT md5(string_agg(concat_ws('|', attrelid, attnum, attname, atttypid,
      attnotnull, attisdropped, atthasdef), ',' ORDER BY attrelid, attnum)) FROM pg_attribute WHERE attrelid >= 16384);
  acc := acc || E'\\n' || 'constraint=' || (SELECT md5(string_agg(c.oid::text || c.conname, ',' ORDER BY c.oid)) FROM pg_constraint c);
  acc := acc || E'\\n' || 'policy=' || (SELECT count(*) FROM pg_policy);
  acc := acc || E'\\n' || 'defacl=' || (SELECT count(*) FROM pg_default_acl);
  acc := acc || E'\\n' || 'lo=' || (SELECT md5(coalesce(string_agg(l.oid::text, ',' ORDER BY l.oid), '')) FROM pg_largeobject_metadata l);
  acc := acc || E'\\n' || 'fdw=' || (SELECT count(*) FROM pg_foreign_server) || '/' || (SELECT count(*) FROM pg_user_mapping);
  acc := acc || E'\\n' || 'pubs=' || (SELECT count(*) FROM pg_publication);
  acc := acc || E'\\n' || 'slots=' || (SELECT count(*) FROM pg_replication_slots);
  acc := acc || E'\\n' || 'prepared_xacts=' || (SELECT count(*) FROM pg_prepared_xacts);
  acc := acc || E'\\n' || 'advisory=' || (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory');
  acc := acc || E'\\n' || 'stats=' || (SELECT md5(coalesce(string_agg(concat_ws('|', starelid, staattnum, stanullfrac,
      stawidth, stadistinct), ',' ORDER BY starelid, staattnum), '')) FROM pg_statistic WHERE starelid >= 16384);
  acc := acc || E'\\n' || 'datadir=' || (SELECT string_agg(f, ',' ORDER BY f) FROM pg_ls_dir('.') f);
  acc := acc || E'\\n' || 'autoconf=' || md5(pg_read_file('postgresql.auto.conf'));
  RETURN md5(acc) || E'\\n' || acc;
END
$fn$;
`;

/** The user tables the corpus protects (for messages). */
export const CORPUS_TABLES = ['customers', 'orders', 'ledger', 'secrets'] as const;
