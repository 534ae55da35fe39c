// Runs SM2/SM3/SM4 operations with npm `sm-crypto` (the JavaScript implementation partners'
// web and Node clients use, independent of the hub's RustCrypto code and of Python gmssl) so
// the hub's tests can compare results in both directions. The same protocol as
// tests/python/gmssl_interop.py: a JSON list of operations on stdin, a JSON list of results on
// stdout, one per operation.
//
// Operations (all byte strings are hex):
//   {"op": "sm3", "data"}                                  → digest
//   {"op": "hmac_sm3", "key", "data"}                      → sm-crypto's own HMAC-SM3 (sm3(data, {key}))
//   {"op": "sm4_cbc_encrypt", "key", "iv", "data"}         → ciphertext (PKCS#7)
//   {"op": "sm4_cbc_decrypt", "key", "iv", "data"}         → plaintext, or "bad" (padding refused)
//   {"op": "sm2_public_key", "private_key"}                → 04‖x‖y
//   {"op": "sm2_sign", "private_key", "public_key", "data", "der"?}
//       → r‖s (128 hex digits), or DER with "der": true; SM3 with Z of the default id
//         1234567812345678 (hash: true)
//   {"op": "sm2_verify", "public_key", "signature", "data", "der"?} → "ok" or "bad"
//   {"op": "sm2_encrypt", "public_key", "data", "prefix"?}
//       → C1C3C2 ciphertext, C1 without 04 as doEncrypt writes it; with "prefix": true the 04 is
//         added in front (how GmSSL, BouncyCastle and the hub write it)
//   {"op": "sm2_decrypt", "private_key", "data"}           → plaintext, or "bad" (doDecrypt
//       answers an empty result when C3 does not match); the ciphertext is given to doDecrypt
//       as is: it expects C1 without 04
//
// Public keys are 04‖x‖y (130 hex digits): sm-crypto 0.3's point decoder reads the first byte
// as the point's form, so a bare x‖y (as Python gmssl writes it) is misread by doVerifySignature
// and doEncrypt; partners keep the 04.
//
// sm-crypto 0.3's byte-array paths expect plain Arrays: a Uint8Array or Buffer goes through
// `arr.map(...)` in its arrayToHex, which keeps a Uint8Array and turns the hex back into
// numbers, so every byte string is handed over as Array.from(Buffer).
'use strict'

const { sm2, sm3, sm4 } = require('sm-crypto')

const bytes = (hex) => Array.from(Buffer.from(hex, 'hex'))
const toHex = (arr) => Buffer.from(arr).toString('hex')
const CIPHER_MODE_C1C3C2 = 1

function run(op) {
  switch (op.op) {
    case 'sm3':
      return sm3(bytes(op.data))
    case 'hmac_sm3':
      return sm3(bytes(op.data), { key: bytes(op.key) })
    case 'sm4_cbc_encrypt':
      return toHex(sm4.encrypt(bytes(op.data), op.key, { mode: 'cbc', iv: op.iv, output: 'array' }))
    case 'sm4_cbc_decrypt':
      try {
        return toHex(sm4.decrypt(bytes(op.data), op.key, { mode: 'cbc', iv: op.iv, output: 'array' }))
      } catch (e) {
        return 'bad'
      }
    case 'sm2_public_key':
      return sm2.getPublicKeyFromPrivateKey(op.private_key)
    case 'sm2_sign':
      return sm2.doSignature(bytes(op.data), op.private_key, {
        hash: true,
        publicKey: op.public_key,
        der: Boolean(op.der),
      })
    case 'sm2_verify': {
      let ok
      try {
        ok = sm2.doVerifySignature(bytes(op.data), op.signature, op.public_key, {
          hash: true,
          der: Boolean(op.der),
        })
      } catch (e) {
        ok = false // a malformed DER signature
      }
      return ok ? 'ok' : 'bad'
    }
    case 'sm2_encrypt': {
      const c = sm2.doEncrypt(bytes(op.data), op.public_key, CIPHER_MODE_C1C3C2)
      return op.prefix ? '04' + c : c
    }
    case 'sm2_decrypt': {
      const plain = sm2.doDecrypt(op.data, op.private_key, CIPHER_MODE_C1C3C2, { output: 'array' })
      return plain.length === 0 ? 'bad' : toHex(plain)
    }
    default:
      throw new Error(`unknown op ${op.op}`)
  }
}

const chunks = []
process.stdin.on('data', (c) => chunks.push(c))
process.stdin.on('end', () => {
  const ops = JSON.parse(Buffer.concat(chunks).toString('utf8'))
  process.stdout.write(JSON.stringify(ops.map(run)))
})
