// Client-side check of an RFC 9162 inclusion proof with WebCrypto SHA-256: recomputes the root from the leaf hash.
// @see https://www.rfc-editor.org/rfc/rfc9162#section-2.1.3.2

const b64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));

async function node(left, right) {
  const buf = new Uint8Array(1 + left.length + right.length);
  buf[0] = 1;
  buf.set(left, 1);
  buf.set(right, 1 + left.length);
  return new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
}

/**
 * True when the audit path leads from `leafHash` (base64) at `index` to `root` (base64) in a tree of `size`.
 * Throws when WebCrypto is unavailable (not a secure context).
 */
export async function verifyInclusion(index, size, leafHash, hashes, root) {
  if (!globalThis.crypto || !crypto.subtle)
    throw new Error('WebCrypto is not available (not a secure context)');
  if (!(index >= 0 && index < size)) return false;
  let fn = index;
  let sn = size - 1;
  let r = b64(leafHash);
  for (const p64 of hashes) {
    const p = b64(p64);
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = await node(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = await node(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  const want = b64(root);
  return sn === 0 && r.length === want.length && r.every((b, i) => b === want[i]);
}
