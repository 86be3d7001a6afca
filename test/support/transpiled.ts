/**
 * Fixtures run as plain JavaScript: tap's TypeScript loader costs a second
 * and a half per process, too much for loops that start hundreds of them.
 * Transpiles lib/, test/support/ and the fixtures asked for to CommonJS
 * under .tap/ (beside the native build, which lib/binding finds one folder
 * above lib/), once per test process; removed when `t` ends.
 */
import fs from 'node:fs'
import path from 'node:path'
import type { Test } from 'tap'
import ts from 'typescript'

const root = path.join(__dirname, '..', '..')

/** Returns the path of each fixture's JavaScript, in the order given (names as in test/fixtures, with .ts). */
export function transpileFixtures (t: Test, fixtures: string[]): string[] {
  const out = path.join(root, '.tap', `js-${process.pid}-${Math.random().toString(36).slice(2, 8)}`)
  const files = [
    ...fs.readdirSync(path.join(root, 'lib'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => `lib/${f}`),
    ...fs.readdirSync(path.join(root, 'test/support')).filter((f) => f.endsWith('.ts')).map((f) => `test/support/${f}`),
    ...fixtures.map((f) => `test/fixtures/${f}`)
  ]
  for (const file of files) {
    const source = fs.readFileSync(path.join(root, file), 'utf8')
    const { outputText } = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true } })
    const target = path.join(out, file.replace(/\.ts$/, '.js'))
    fs.mkdirSync(path.dirname(target), { recursive: true })
    fs.writeFileSync(target, outputText)
  }
  for (const dir of ['build', 'prebuilds']) if (fs.existsSync(path.join(root, dir))) fs.symlinkSync(path.join(root, dir), path.join(out, dir))
  t.teardown(() => { fs.rmSync(out, { recursive: true, force: true }) })
  return fixtures.map((f) => path.join(out, 'test/fixtures', f.replace(/\.ts$/, '.js')))
}
