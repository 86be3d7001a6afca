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
  }
]
