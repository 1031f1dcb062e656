import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {KubeConfig} from '@kubernetes/client-node'

import {caFromFile, caFromKubeConfig} from '../../src/lib/cert/ca.js'
import {UsageError} from '../../src/lib/errors.js'
import {makeCa, writeTempFile} from '../helpers/certs.js'

const ca = makeCa('kubeconfig-ca')

function kubeconfig(cluster: {
  'certificate-authority-data'?: string
  'certificate-authority'?: string
  'insecure-skip-tls-verify'?: boolean
}): KubeConfig {
  const kc = new KubeConfig()
  kc.loadFromString(
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{name: 'prod', cluster: {server: 'https://10.0.0.11:6443', ...cluster}}],
      users: [{name: 'admin', user: {token: 'x'}}],
      contexts: [{name: 'prod', context: {cluster: 'prod', user: 'admin'}}],
      'current-context': 'prod',
    }),
  )
  return kc
}

describe('caFromKubeConfig', () => {
  it('takes certificate-authority-data', () => {
    const found = caFromKubeConfig(kubeconfig({'certificate-authority-data': Buffer.from(ca.certPem).toString('base64')}))
    assert.deepEqual(found, {source: 'kubeconfig', description: 'certificate-authority-data of kubeconfig cluster "prod"', pem: ca.certPem})
  })

  it('reads the certificate-authority file', () => {
    const file = writeTempFile('ca.crt', ca.certPem)
    assert.deepEqual(caFromKubeConfig(kubeconfig({'certificate-authority': file})), {
      source: 'kubeconfig',
      description: `certificate-authority ${file} of kubeconfig cluster "prod"`,
      pem: ca.certPem,
    })
  })

  it('says when the cluster names no CA, and why', () => {
    assert.deepEqual(caFromKubeConfig(kubeconfig({'insecure-skip-tls-verify': true})), {
      source: 'none',
      description: 'kubeconfig cluster "prod" names no certificate-authority (it sets insecure-skip-tls-verify)',
    })
  })

  it('refuses a CA that is missing or holds no certificate, naming where it looked', () => {
    assert.throws(
      () => caFromKubeConfig(kubeconfig({'certificate-authority': '/nonexistent/ca.crt'})),
      (e: UsageError) => e.message === 'cannot read certificate-authority /nonexistent/ca.crt of kubeconfig cluster "prod": ENOENT',
    )
    assert.throws(
      () => caFromKubeConfig(kubeconfig({'certificate-authority-data': Buffer.from('garbage').toString('base64')})),
      (e: UsageError) =>
        e.exitCode === 2 && e.message === 'certificate-authority-data of kubeconfig cluster "prod" is not valid: no PEM certificate in it',
    )
  })
})

describe('caFromFile', () => {
  it('takes a bundle and keeps all of it', () => {
    const bundle = makeCa('older-ca').certPem + ca.certPem
    const file = writeTempFile('bundle.crt', bundle)
    assert.deepEqual(caFromFile(file), {source: 'file', description: file, pem: bundle})
  })

  it('refuses a PEM block that is not a certificate', () => {
    const file = writeTempFile('bad.crt', '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n')
    assert.throws(
      () => caFromFile(file),
      (e: UsageError) => e.exitCode === 2 && e.message.startsWith(`invalid --ca-file ${JSON.stringify(file)}: `),
    )
  })
})
