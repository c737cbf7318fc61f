// Source-address conditions: IPv4/IPv6 parsing and CIDR matching, with IPv4-mapped IPv6 addresses normalised to IPv4.
// @see https://www.rfc-editor.org/rfc/rfc4291#section-2.5.5.2 (IPv4-mapped IPv6 addresses)
// @see https://www.rfc-editor.org/rfc/rfc4632#section-3.1 (CIDR prefix notation)

/** A parsed address: 4 bytes for IPv4, 16 for IPv6. */
export interface IpAddress {
  readonly version: 4 | 6;
  readonly bytes: Uint8Array;
}

export interface Cidr {
  readonly version: 4 | 6;
  readonly bytes: Uint8Array;
  readonly prefix: number;
  /** The text as written in the policy, for explanations. */
  readonly text: string;
}

function parseIpv4Bytes(s: string): Uint8Array | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i] as string;
    // Decimal only, no leading zeros (they are octal in some parsers: refuse the ambiguity).
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out[i] = n;
  }
  return out;
}

function parseIpv6Bytes(input: string): Uint8Array | undefined {
  let s = input;
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  if (s.length === 0 || s.length > 45) return undefined;
  let tail: Uint8Array | undefined;
  // An embedded IPv4 dotted quad may end the address (e.g. ::ffff:10.0.0.1).
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.')) {
    tail = parseIpv4Bytes(s.slice(lastColon + 1));
    if (tail === undefined) return undefined;
    s = s.slice(0, lastColon + 1) + '0:0';
  }
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const parseGroups = (t: string): number[] | undefined => {
    if (t === '') return [];
    const out: number[] = [];
    for (const g of t.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = parseGroups(halves[0] as string);
  const rest = halves.length === 2 ? parseGroups(halves[1] as string) : [];
  if (head === undefined || rest === undefined) return undefined;
  let groups: number[];
  if (halves.length === 2) {
    const missing = 8 - head.length - rest.length;
    if (missing < 1) return undefined;
    groups = [...head, ...new Array<number>(missing).fill(0), ...rest];
  } else {
    groups = head;
  }
  if (groups.length !== 8) return undefined;
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  if (tail !== undefined) out.set(tail, 12);
  return out;
}

function isMapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

/**
 * Parses an IPv4 or IPv6 address; IPv4-mapped IPv6 (::ffff:a.b.c.d) becomes IPv4.
 * INVARIANT: the same host always yields the same bytes, whichever form the socket reported.
 */
export function parseIp(text: string): IpAddress | undefined {
  const s = text.trim();
  if (s.includes(':')) {
    const b = parseIpv6Bytes(s);
    if (b === undefined) return undefined;
    if (isMapped(b)) return { version: 4, bytes: b.slice(12) };
    return { version: 6, bytes: b };
  }
  const b = parseIpv4Bytes(s);
  return b === undefined ? undefined : { version: 4, bytes: b };
}

/** Parses `addr/len` (or a bare address: a single host). Returns an error message instead of throwing. */
export function parseCidr(text: string): Cidr | string {
  const slash = text.indexOf('/');
  const addrText = slash >= 0 ? text.slice(0, slash) : text;
  const lenText = slash >= 0 ? text.slice(slash + 1) : undefined;
  const isV6Text = addrText.includes(':');
  const raw = isV6Text ? parseIpv6Bytes(addrText) : parseIpv4Bytes(addrText);
  if (raw === undefined || addrText.includes('%'))
    return `"${text}" is not a valid IPv4 or IPv6 address range`;
  const max = isV6Text ? 128 : 32;
  let prefix = max;
  if (lenText !== undefined) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(lenText) || Number(lenText) > max) {
      return `"${text}" has an invalid prefix length (0..${max})`;
    }
    prefix = Number(lenText);
  }
  let version: 4 | 6 = isV6Text ? 6 : 4;
  let bytes = raw;
  if (isV6Text && isMapped(raw) && prefix >= 96) {
    version = 4;
    bytes = raw.slice(12);
    prefix -= 96;
  }
  // Host bits set usually means a typo; refuse rather than guess.
  for (let bit = prefix; bit < bytes.length * 8; bit++) {
    if (((bytes[bit >> 3] as number) >> (7 - (bit & 7))) & 1) {
      return `"${text}" has host bits set beyond /${lenText ?? max}`;
    }
  }
  return { version, bytes, prefix, text };
}

function prefixEqual(a: Uint8Array, b: Uint8Array, prefix: number): boolean {
  const full = prefix >> 3;
  for (let i = 0; i < full; i++) if (a[i] !== b[i]) return false;
  const rem = prefix & 7;
  if (rem === 0) return true;
  const mask = (0xff << (8 - rem)) & 0xff;
  return ((a[full] as number) & mask) === ((b[full] as number) & mask);
}

/** Whether the address lies in the range. An IPv4 address is also matched against IPv6 ranges in its mapped form. */
export function cidrContains(cidr: Cidr, addr: IpAddress): boolean {
  if (cidr.version === addr.version) return prefixEqual(cidr.bytes, addr.bytes, cidr.prefix);
  if (cidr.version === 6 && addr.version === 4) {
    const mapped = new Uint8Array(16);
    mapped[10] = 0xff;
    mapped[11] = 0xff;
    mapped.set(addr.bytes, 12);
    return prefixEqual(cidr.bytes, mapped, cidr.prefix);
  }
  return false;
}
