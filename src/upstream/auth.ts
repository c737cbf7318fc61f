// Client side of upstream PostgreSQL authentication: SCRAM-SHA-256 (with server signature check) and md5 responses.
// @see https://www.rfc-editor.org/rfc/rfc5802 (SCRAM), https://www.rfc-editor.org/rfc/rfc7677 (SHA-256)
// @see https://www.postgresql.org/docs/current/sasl-authentication.html
// @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP (AuthenticationMD5Password)

import { createHash, timingSafeEqual } from 'node:crypto';
import { WardenError } from '../core/errors.js';
import {
  MAX_SCRAM_MESSAGE_LENGTH,
  NONCE_PATTERN,
  checkExtensions,
  decodeBase64Strict,
  deriveScramKeys,
  hmacSha256,
  randomNonce,
  splitAttributes,
  violation,
  xorBuffers,
} from '../identity/scram.js';

/**
 * PostgreSQL 16+ lets operators lower scram_iterations, so any count >= 1 is accepted; above this cap a hostile
 * or misconfigured server could make the gateway burn seconds of CPU per connection.
 */
export const MAX_UPSTREAM_ITERATIONS = 1_000_000;

/** The only gs2 header this client sends: no channel binding, no authzid. */
const GS2_HEADER = 'n,,';

type ClientState =
  | { readonly step: 'initial' }
  | { readonly step: 'sent-client-first'; readonly bare: string }
  | { readonly step: 'sent-client-final'; readonly serverSignature: Buffer }
  | { readonly step: 'done' };

/**
 * One SCRAM-SHA-256 exchange, client side: clientFirst() → serverFirst(msg) → verifyServerFinal(msg).
 *
 * INVARIANT: authentication is complete only once verifyServerFinal() returned: that is the proof that the
 * upstream knows the verifier, and a caller must not treat the upstream as authenticated before it.
 * INVARIANT: any malformed or out-of-order step throws and ends the exchange.
 */
export class ScramClient {
  readonly #password: string;
  readonly #nonce: string;
  readonly #username: string;
  #state: ClientState = { step: 'initial' };

  /**
   * @param opts.nonce client nonce, for tests only (default: 18 random bytes, base64).
   * @param opts.username SCRAM user name; PostgreSQL ignores it and expects it empty (default ''). Must already
   *   be a saslname (',' and '=' escaped).
   */
  constructor(password: string, opts?: { nonce?: string; username?: string }) {
    this.#password = password;
    this.#nonce = opts?.nonce ?? randomNonce();
    if (!NONCE_PATTERN.test(this.#nonce)) throw new WardenError('INTERNAL', 'client nonce is not printable');
    this.#username = opts?.username ?? '';
    if (!/^(?:[^,=\0]|=2C|=3D)*$/.test(this.#username)) {
      throw new WardenError('INTERNAL', 'SCRAM user name is not a saslname');
    }
  }

  /** The client-first-message, e.g. `n,,n=,r=<nonce>`. */
  clientFirst(): string {
    if (this.#state.step !== 'initial') throw this.#fail('clientFirst called twice');
    const bare = `n=${this.#username},r=${this.#nonce}`;
    this.#state = { step: 'sent-client-first', bare };
    return GS2_HEADER + bare;
  }

  /** Takes the server-first-message, returns the client-final-message (with the proof). */
  serverFirst(message: string): string {
    const st = this.#state;
    if (st.step !== 'sent-client-first') throw this.#fail('server-first-message out of order');
    this.#state = { step: 'done' };
    if (typeof message !== 'string' || message.length > MAX_SCRAM_MESSAGE_LENGTH) {
      throw violation('server-first-message is too long');
    }
    const [r, s, i, ...extensions] = splitAttributes(message, 'server-first-message');
    if (r?.name === 'm') throw violation('the server requires an unsupported SCRAM extension');
    // INVARIANT: the server nonce extends ours (RFC 5802 §5.1); otherwise this is a replay or a different exchange.
    if (
      r?.name !== 'r' ||
      !NONCE_PATTERN.test(r.value) ||
      !r.value.startsWith(this.#nonce) ||
      r.value.length <= this.#nonce.length
    ) {
      throw violation('the server nonce does not extend the client nonce');
    }
    if (s?.name !== 's') throw violation('expected a salt');
    const salt = decodeBase64Strict(s.value);
    if (salt === null || salt.length === 0) throw violation('the salt is not canonical base64');
    if (i?.name !== 'i' || !/^[1-9][0-9]{0,9}$/.test(i.value)) throw violation('expected an iteration count');
    const iterations = Number(i.value);
    if (iterations > MAX_UPSTREAM_ITERATIONS) {
      throw new WardenError(
        'CONNECTION_FAILURE',
        `upstream asked for ${iterations} SCRAM iterations; the limit is ${MAX_UPSTREAM_ITERATIONS}`,
      );
    }
    checkExtensions(extensions, 'mrsi', 'server-first-message');

    const keys = deriveScramKeys(this.#password, salt, iterations);
    const withoutProof = `c=${Buffer.from(GS2_HEADER, 'utf8').toString('base64')},r=${r.value}`;
    const authMessage = `${st.bare},${message},${withoutProof}`;
    const proof = xorBuffers(keys.clientKey, hmacSha256(keys.storedKey, authMessage));
    this.#state = { step: 'sent-client-final', serverSignature: hmacSha256(keys.serverKey, authMessage) };
    return `${withoutProof},p=${proof.toString('base64')}`;
  }

  /**
   * Checks the server-final-message. Throws WardenError('CONNECTION_FAILURE') when the server reports an error
   * or its signature is wrong (it does not know the verifier), PROTOCOL_VIOLATION when the message is malformed.
   */
  verifyServerFinal(message: string): void {
    const st = this.#state;
    if (st.step !== 'sent-client-final') throw this.#fail('server-final-message out of order');
    this.#state = { step: 'done' };
    if (typeof message !== 'string' || message.length > MAX_SCRAM_MESSAGE_LENGTH) {
      throw violation('server-final-message is too long');
    }
    const [first, ...extensions] = splitAttributes(message, 'server-final-message');
    checkExtensions(extensions, 've', 'server-final-message');
    if (first?.name === 'e') {
      const reason = /^[\x21-\x2b\x2d-\x7e]{1,64}$/.test(first.value) ? first.value : 'unreadable';
      throw new WardenError('CONNECTION_FAILURE', `upstream SCRAM authentication failed: ${reason}`);
    }
    if (first?.name !== 'v') throw violation('expected a server signature');
    const signature = decodeBase64Strict(first.value);
    if (signature === null || signature.length !== st.serverSignature.length) {
      throw violation('the server signature is not 32 bytes of base64');
    }
    if (!timingSafeEqual(signature, st.serverSignature)) {
      throw new WardenError(
        'CONNECTION_FAILURE',
        'upstream SCRAM server signature is wrong: the server does not know the password verifier',
      );
    }
  }

  #fail(message: string): WardenError {
    this.#state = { step: 'done' };
    return new WardenError('PROTOCOL_VIOLATION', message);
  }
}

/**
 * The response to AuthenticationMD5Password: `md5` + hex(md5(hex(md5(password + user)) + salt)).
 * @param salt the 4 salt bytes the server sent.
 */
export function md5Password(user: string, password: string, salt: Buffer): string {
  if (salt.length !== 4) throw new WardenError('PROTOCOL_VIOLATION', 'md5 salt must be 4 bytes');
  const inner = createHash('md5')
    .update(Buffer.concat([Buffer.from(password, 'utf8'), Buffer.from(user, 'utf8')]))
    .digest('hex');
  return (
    'md5' +
    createHash('md5')
      .update(Buffer.concat([Buffer.from(inner, 'ascii'), salt]))
      .digest('hex')
  );
}
