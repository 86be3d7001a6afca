// Lint and format in one: neostandard (the maintained successor of
// standard/ts-standard) with its TypeScript rules, over everything that
// ships or proves it: lib, test, bench, examples, bin.
import neostandard from 'neostandard'

export default [
  ...neostandard({
    ts: true,
    ignores: ['dist/**', 'build/**', 'prebuilds/**', 'node_modules/**', '.tap/**', 'bench/results/**']
  }),
  {
    rules: {
      // `void promise` marks a promise left to run on purpose (its errors
      // are handled inside); as an expression, void stays an error.
      'no-void': ['error', { allowAsStatement: true }]
    }
  },
  {
    // A value re-exported with `export { x } from` compiles to a getter on
    // CommonJS exports, which turns the module's exports object into a slow
    // dictionary; the ring's hot paths read layout modules per message
    // (docs/performance.md, "Layout constants"). Types may be re-exported,
    // and the public index may re-export anything.
    files: ['lib/**/*.ts'],
    ignores: ['lib/index.ts'],
    rules: {
      'no-restricted-syntax': ['error', {
        selector: "ExportNamedDeclaration[source][exportKind='value']",
        message: 'Do not re-export values inside lib/: export a plain constant (export const x = module.x).'
      }, {
        selector: 'ExportAllDeclaration',
        message: 'Do not re-export values inside lib/: export a plain constant (export const x = module.x).'
      }]
    }
  }
]
