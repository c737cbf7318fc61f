// Serves the web console's static files (plain HTML, CSS, ES modules; no build step) with a strict Content-Security-Policy.

import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The console's Content-Security-Policy: scripts and styles only from the console's own files, no inline code, no
 * plugins, no framing. INVARIANT: every console response carries it, with `X-Content-Type-Options: nosniff`.
 */
export const CONSOLE_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; frame-ancestors 'none'";

const TYPES: Readonly<Record<string, string>> = {
  html: 'text/html; charset=utf-8',
  css: 'text/css; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  svg: 'image/svg+xml',
};

/**
 * A console file name: one flat segment of lower-case letters, digits and dashes with a known extension.
 * INVARIANT: nothing else is ever read from disk, so no path (`..`, `/`, `%2e`, a NUL) can escape the folder.
 */
const FILE_RE = /^[a-z0-9][a-z0-9-]{0,63}\.(html|css|js|svg)$/;

/**
 * The folder of the console's static files: `static/` beside this module (running from `src/`, or from `dist/` once
 * the build copied it), else the source folder (running from `dist/` in a checkout without the copy).
 */
export function defaultConsoleRoot(): string {
  const here = fileURLToPath(new URL('./static/', import.meta.url));
  if (existsSync(join(here, 'index.html'))) return here;
  return fileURLToPath(new URL('../../src/console/static/', import.meta.url));
}

export interface ConsoleResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
}

/** True for the paths the console owns: `/`, `/console` and `/console/...`. */
export function isConsolePath(pathname: string): boolean {
  return pathname === '/' || pathname === '/console' || pathname.startsWith('/console/');
}

/** Headers every console response carries. */
export function consoleHeaders(contentType: string): Record<string, string> {
  return {
    'content-type': contentType,
    'content-security-policy': CONSOLE_CSP,
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
    'referrer-policy': 'no-referrer',
    'cache-control': 'no-store',
  };
}

function text(status: number, message: string, extra: Record<string, string> = {}): ConsoleResponse {
  return {
    status,
    headers: { ...consoleHeaders('text/plain; charset=utf-8'), ...extra },
    body: Buffer.from(message + '\n'),
  };
}

/**
 * The response for a console path (see isConsolePath): the file, a redirect (`/console` to `/console/`), 404 for an
 * unknown or malformed name, 405 for a method other than GET or HEAD (HEAD gets an empty body).
 */
export async function serveConsole(method: string, pathname: string, root: string): Promise<ConsoleResponse> {
  if (method !== 'GET' && method !== 'HEAD') return text(405, 'method not allowed', { allow: 'GET, HEAD' });
  if (pathname === '/console') return text(308, 'moved', { location: '/console/' });
  const name =
    pathname === '/' || pathname === '/console/' ? 'index.html' : pathname.slice('/console/'.length);
  const m = FILE_RE.exec(name);
  if (m === null) return text(404, 'not found');
  let body: Buffer;
  try {
    body = await readFile(join(root, name));
  } catch {
    return text(404, 'not found');
  }
  const type = TYPES[m[1] ?? ''] ?? 'application/octet-stream';
  return { status: 200, headers: consoleHeaders(type), body: method === 'HEAD' ? Buffer.alloc(0) : body };
}
