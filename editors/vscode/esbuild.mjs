// Bundles the extension (dist/extension.js) or, with --tests, each unit test (out/test/*.js).
// Tests are bundled with `vscode` aliased to test/fakeVscode.ts, so they run under plain mocha.
import * as esbuild from 'esbuild';
import { readdirSync } from 'node:fs';

const args = new Set(process.argv.slice(2));
const production = args.has('--production');

const extension = {
  entryPoints: ['src/extension.ts'],
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  outfile: 'dist/extension.js',
  external: ['vscode'],
  sourcemap: !production,
  minify: production,
  logLevel: 'warning',
};

const tests = {
  entryPoints: readdirSync('test').filter((f) => f.endsWith('.test.ts')).map((f) => `test/${f}`),
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  outdir: 'out/test',
  alias: { vscode: './test/fakeVscode.ts' },
  sourcemap: 'inline',
  logLevel: 'warning',
};

const options = args.has('--tests') ? tests : extension;
if (args.has('--watch')) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
} else {
  await esbuild.build(options);
}
