// Build step: writes dist/MANIFEST.json, the SHA-256 of every file under dist/ (except the manifest), for `warden verify-install`.
// Usage: node --import tsx scripts/build-manifest.ts [DIST_DIR]   (run after `tsc -p tsconfig.build.json`)

import { resolve } from 'node:path';
import { writeManifest } from '../src/bundle/manifest.js';

const dist = resolve(process.argv[2] ?? resolve(import.meta.dirname, '../dist'));
const { manifest, manifestHash } = writeManifest(dist);
console.log(
  `wrote ${dist}/MANIFEST.json: ${Object.keys(manifest.files).length} files, sha256 ${manifestHash}`,
);
