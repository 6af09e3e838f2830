// interop_paseto.mjs - gitgate tokens against an independent PASETO v4
// implementation: the npm package `paseto` (panva), Node >= 16.
//
//   node interop_paseto.mjs GITGATE WORKDIR
//
// Exit 0 = all checks passed, 77 = `paseto` not installed (skip), else fail.
// The package is never installed by the test; point GG_PASETO_MODULE at an
// installed copy (e.g. /tmp/interop/node_modules/paseto) or make it
// resolvable from this directory.
import { execFileSync, spawnSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'

const [gitgate, work] = process.argv.slice(2)

let paseto
try {
  const where = process.env.GG_PASETO_MODULE
  const mod = where
    ? await import(pathToFileURL(path.join(where, 'lib', 'index.js')).href)
    : await import('paseto')
  paseto = mod.default ?? mod
} catch (e) {
  console.log(`SKIP: npm package 'paseto' not available (${e.code ?? e.message})`)
  process.exit(77)
}
const { V4 } = paseto

let failures = 0
function check(cond, what) {
  console.log(`${cond ? 'ok  ' : 'FAIL'} ${what}`)
  if (!cond) failures++
}

const b64 = (buf) => Buffer.from(buf).toString('base64url')
const paserkBytes = (file, prefix) => {
  const text = fs.readFileSync(file, 'utf8').trim()
  if (!text.startsWith(prefix)) throw new Error(`${file}: not ${prefix}`)
  return Buffer.from(text.slice(prefix.length), 'base64url')
}

const keys = path.join(work, 'interop-keys')
execFileSync(gitgate, ['keygen', '--out', keys])
const pub = paserkBytes(path.join(keys, 'verify.pub'), 'k4.public.')
const sec = paserkBytes(path.join(keys, 'signing.key'), 'k4.secret.')
// Keys built from the raw bytes, independent of either side's PASERK code.
const publicKey = crypto.createPublicKey({
  key: { kty: 'OKP', crv: 'Ed25519', x: b64(pub) },
  format: 'jwk',
})
const privateKey = crypto.createPrivateKey({
  key: { kty: 'OKP', crv: 'Ed25519', x: b64(sec.subarray(32)), d: b64(sec.subarray(0, 32)) },
  format: 'jwk',
})
check(sec.subarray(32).equals(pub), 'k4.secret carries the k4.public key')

// 1. gitgate mints, paseto verifies.
const token = execFileSync(gitgate, [
  'mint', '--key', path.join(keys, 'signing.key'), '--repo', 'acme/widget',
  '--push', 'agent/*', '--sub', 'interop', '--ttl', '10m',
]).toString().trim()
const { payload, footer } = await V4.verify(token, publicKey, { complete: true })
check(payload.sub === 'interop', 'paseto verifies a gitgate token (sub)')
check(JSON.stringify(payload.repos) === '["acme/widget"]', 'repos claim')
check(JSON.stringify(payload.ops) === '["fetch","push"]', 'ops claim')
check(new Date(payload.exp) - new Date(payload.iat) === 600000, 'exp - iat = 10m')
const kid = JSON.parse(footer.toString()).kid
check(/^k4\.pid\.[A-Za-z0-9_-]{44}$/.test(kid), 'footer kid is a k4.pid')
const paserkPub = fs.readFileSync(path.join(keys, 'verify.pub'), 'utf8').trim()
const viaPaserk = await V4.verify(token, paserkPub)
check(viaPaserk.jti === payload.jti, "paseto verifies with verify.pub's PASERK text")

// 2. paseto signs (with gitgate's kid footer, and without), gitgate accepts.
const claims = {
  sub: 'from-node', jti: crypto.randomBytes(18).toString('base64url'),
  repos: ['acme/widget'], ops: ['fetch'], branches: [], allow_force: false,
}
for (const footerOpt of [{ kid }, undefined]) {
  const t = await V4.sign(claims, privateKey, {
    footer: footerOpt, expiresIn: '10m', // iat/exp as ISO strings with .sss
  })
  const r = spawnSync(gitgate, ['inspect', '--key', path.join(keys, 'verify.pub'), t])
  const out = r.status === 0 ? JSON.parse(r.stdout.toString()) : {}
  check(r.status === 0 && out.sub === 'from-node' && out.jti === claims.jti,
    `gitgate accepts a paseto-signed token (${footerOpt ? 'kid footer' : 'no footer'})` +
    (r.status === 0 ? '' : `: ${r.stderr}`))
}

// 3. paseto refuses a token gitgate would refuse: one byte changed.
const body = token.split('.')[2]
const flipped = token.replace(body, body.slice(0, 20) + (body[20] === 'A' ? 'B' : 'A') + body.slice(21))
let refused = false
try { await V4.verify(flipped, publicKey) } catch { refused = true }
check(refused, 'paseto refuses a tampered gitgate token')
const r = spawnSync(gitgate, ['inspect', '--key', path.join(keys, 'verify.pub'), flipped])
check(r.status === 1, 'gitgate refuses it too')

console.log(`interop: ${failures} failure(s)`)
process.exit(failures ? 1 : 0)
