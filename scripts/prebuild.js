'use strict'
// Builds prebuilds/<platform>-<arch>/shm-channel.abi<N>.<libc>.node for the
// Node running this script. The addon uses V8's API, so it is tied to one Node
// ABI: run this once per Node major you ship for (see README, "Prebuilds").
const { execFileSync } = require('node:child_process')
const path = require('node:path')

const bin = require.resolve('prebuildify/bin.js')
execFileSync(process.execPath, [bin, '--napi=false', '--strip', '--tag-libc', '--target', `node@${process.versions.node}`], {
  cwd: path.join(__dirname, '..'),
  stdio: 'inherit'
})
