// The demo's sample schema and data: customers with SSN-like canary values, orders, and an append-only ledger.

export const DEMO_SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS public.customers (
  id integer PRIMARY KEY,
  name text NOT NULL,
  email text NOT NULL,
  ssn text NOT NULL,
  tenant_id integer NOT NULL
);
CREATE TABLE IF NOT EXISTS public.orders (
  id integer PRIMARY KEY,
  customer_id integer NOT NULL REFERENCES public.customers(id),
  amount numeric(12,2) NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS public.ledger (
  id bigserial PRIMARY KEY,
  account text NOT NULL,
  amount numeric(12,2) NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
`;

export const DEMO_DATA_SQL = `
INSERT INTO public.customers (id, name, email, ssn, tenant_id) VALUES
  (1, 'Ada Lovelace', 'ada@example.com', '123-45-6789', 1),
  (2, 'Alan Turing', 'alan@example.com', '987-65-4321', 1),
  (3, 'Grace Hopper', 'grace@example.com', '555-12-3456', 2),
  (4, 'Edsger Dijkstra', 'edsger@example.com', '222-33-4444', 2)
ON CONFLICT (id) DO NOTHING;
INSERT INTO public.orders (id, customer_id, amount) VALUES
  (100, 1, 25.00), (101, 1, 99.90), (102, 2, 12.50), (103, 3, 7.25), (104, 4, 310.00)
ON CONFLICT (id) DO NOTHING;
INSERT INTO public.ledger (account, amount)
  SELECT 'opening', 1000.00 WHERE NOT EXISTS (SELECT 1 FROM public.ledger);
`;

/** The sample users: name, kind, groups, description. */
export const DEMO_USERS = [
  {
    name: 'alice',
    kind: 'human',
    groups: ['analysts'],
    about: 'analyst: reads customers (masked) and orders',
  },
  { name: 'bob', kind: 'human', groups: ['writers'], about: 'writer: writes orders, appends to the ledger' },
  { name: 'carol', kind: 'human', groups: ['approvers'], about: 'approver: approves risky statements' },
] as const;
