import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {describe, it} from 'node:test'
import {PackageURL} from 'packageurl-js'

import type {LockedPackage} from '../../scripts/image/debian.js'
import {readDefinition} from '../../scripts/image/definition.js'
import {lockedPackages, readLock} from '../../scripts/image/lock.js'
import {buildSbom, karpOwnedPaths, type SbomInput, sbomFileName, sbomJson, type SpdxDocument} from '../../scripts/image/sbom.js'

const root = new URL('../..', import.meta.url).pathname
const definition = readDefinition(root)
const lock = readLock(`${root}agent/image/packages.lock.json`)
const DIGEST = `sha256:${'ab12'.repeat(16)}`
const tls = definition.helpers.programs.find((p) => p.name === 'karp-tls')
const tlsPath = tls?.path ?? '/missing'
const tlsLinks = tls?.staticallyLinks ?? []
const OTHER_DIGEST = `sha256:${'cd34'.repeat(16)}`
const ELF = Buffer.concat([Buffer.from('\x7fELF', 'latin1'), Buffer.alloc(60, 1)])

function input(arch: string, overrides: Partial<SbomInput> = {}): SbomInput {
  return {
    image: {name: definition.name, tag: 'v0.1.0', arch, manifestDigest: DIGEST},
    sourceDateEpoch: lock.sourceDateEpoch,
    packages: lockedPackages(lock, arch, definition.packages),
    buildPackages: lockedPackages(lock, arch, definition.buildPackages),
    snapshot: lock.snapshot,
    staticLinks: {[tlsPath]: tlsLinks},
    karp: {
      version: '0.1.0',
      license: 'Apache-2.0',
      files: karpOwnedPaths(definition).map((path) => ({path, data: path.endsWith('.sh') ? Buffer.from(`#!/bin/sh\n# ${path}\n`) : ELF})),
    },
    ...overrides,
  }
}

function sha(algorithm: string, data: Buffer | string): string {
  return createHash(algorithm).update(data).digest('hex')
}

function related(doc: SpdxDocument, from: string, type: string): string[] {
  return doc.relationships.filter((r) => r.spdxElementId === from && r.relationshipType === type).map((r) => r.relatedSpdxElement)
}

describe('image SBOM (SPDX 2.3)', () => {
  for (const arch of definition.architectures) {
    describe(arch, () => {
      const doc = buildSbom(input(arch))
      const locked = lockedPackages(lock, arch, definition.packages)

      it('has the SPDX 2.3 document header', () => {
        assert.equal(doc.spdxVersion, 'SPDX-2.3')
        assert.equal(doc.dataLicense, 'CC0-1.0')
        assert.equal(doc.SPDXID, 'SPDXRef-DOCUMENT')
        assert.match(doc.creationInfo.created, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/)
        assert.ok(doc.creationInfo.creators.every((c) => /^(Tool|Organization|Person): \S/.test(c)))
      })

      it('describes the image by name, tag and manifest digest', () => {
        assert.deepEqual(related(doc, 'SPDXRef-DOCUMENT', 'DESCRIBES'), ['SPDXRef-Image'])
        const image = doc.packages.find((p) => p.SPDXID === 'SPDXRef-Image')
        assert.equal(image?.name, 'ghcr.io/karp-vip/karp-agent')
        assert.equal(image?.versionInfo, 'v0.1.0')
        assert.deepEqual(image?.checksums, [{algorithm: 'SHA256', checksumValue: DIGEST.slice('sha256:'.length)}])
        assert.equal(image?.primaryPackagePurpose, 'CONTAINER')
        const purl = PackageURL.fromString(image?.externalRefs?.[0]?.referenceLocator ?? '')
        assert.equal(purl.type, 'oci')
        assert.equal(purl.name, 'karp-agent')
        assert.equal(purl.version, DIGEST)
        assert.deepEqual({...purl.qualifiers}, {arch, repository_url: 'ghcr.io/karp-vip/karp-agent', tag: 'v0.1.0'})
      })

      it('lists every locked runtime package once, with its .deb SHA-256 and purl, contained in the image', () => {
        const contained = related(doc, 'SPDXRef-Image', 'CONTAINS')
        for (const pkg of locked) {
          const entries = doc.packages.filter((p) => p.name === pkg.name)
          assert.equal(entries.length, 1, pkg.name)
          const entry = entries[0]
          assert.equal(entry?.versionInfo, pkg.version)
          assert.deepEqual(entry?.checksums, [{algorithm: 'SHA256', checksumValue: pkg.sha256}])
          assert.equal(entry?.licenseDeclared, 'NOASSERTION')
          assert.equal(entry?.downloadLocation, `https://snapshot.debian.org/archive/${pkg.archive}/${lock.snapshot}/${pkg.filename}`)
          assert.deepEqual(entry?.externalRefs, [
            {
              referenceCategory: 'PACKAGE-MANAGER',
              referenceType: 'purl',
              referenceLocator: `pkg:deb/debian/${pkg.name}@${pkg.version}?arch=${arch}&distro=debian-12`,
            },
          ])
          assert.ok(contained.includes(entry?.SPDXID ?? ''), `image CONTAINS ${pkg.name}`)
        }
      })

      it('purls read back (through the purl library) as the lock entry, epochs and security-suite packages included', () => {
        for (const pkg of locked) {
          const ref = doc.packages.find((p) => p.name === pkg.name)?.externalRefs?.[0]?.referenceLocator ?? ''
          const purl = PackageURL.fromString(ref)
          assert.deepEqual([purl.type, purl.namespace, purl.name, purl.version], ['deb', 'debian', pkg.name, pkg.version], ref)
          assert.deepEqual({...purl.qualifiers}, {arch, distro: 'debian-12'})
        }
        assert.ok(
          locked.some((p) => p.version.includes(':')),
          'the lock has an epoch version to check',
        )
        assert.ok(
          locked.some((p) => p.suite.endsWith('-security')),
          'the lock has a security-suite package to check',
        )
      })

      it('build-only packages are build dependencies of karp, not contents of the image', () => {
        const contained = related(doc, 'SPDXRef-Image', 'CONTAINS')
        for (const name of definition.buildPackages) {
          const entry = doc.packages.find((p) => p.name === name)
          assert.ok(entry, name)
          assert.ok(!contained.includes(entry.SPDXID), `${name} is not in the image`)
          assert.deepEqual(related(doc, entry.SPDXID, 'BUILD_DEPENDENCY_OF'), ['SPDXRef-Package-karp'])
        }
      })

      it('karp-tls is statically linked to the build packages it names, so their code is accounted for in the image', () => {
        const tls = doc.files.find((f) => f.fileName === `.${tlsPath}`)
        assert.ok(tls)
        const linked = related(doc, tls.SPDXID, 'STATIC_LINK').map((id) => doc.packages.find((p) => p.SPDXID === id)?.name)
        assert.deepEqual(linked.sort(), ['libbearssl-dev'])
      })

      it("karp's files sit in the karp package with SHA1 and SHA256, and its verification code is SPDX's", () => {
        const files = input(arch).karp.files
        assert.deepEqual(doc.files.map((f) => f.fileName).sort(), files.map((f) => `.${f.path}`).sort())
        for (const file of files) {
          const entry = doc.files.find((f) => f.fileName === `.${file.path}`)
          assert.deepEqual(entry?.checksums, [
            {algorithm: 'SHA1', checksumValue: sha('sha1', file.data)},
            {algorithm: 'SHA256', checksumValue: sha('sha256', file.data)},
          ])
          assert.deepEqual(entry?.fileTypes, [file.path.endsWith('.sh') ? 'SOURCE' : 'BINARY'])
        }
        assert.deepEqual(related(doc, 'SPDXRef-Package-karp', 'CONTAINS').sort(), doc.files.map((f) => f.SPDXID).sort())
        assert.ok(related(doc, 'SPDXRef-Image', 'CONTAINS').includes('SPDXRef-Package-karp'))
        const karp = doc.packages.find((p) => p.SPDXID === 'SPDXRef-Package-karp')
        assert.equal(karp?.licenseDeclared, 'Apache-2.0')
        assert.equal(karp?.filesAnalyzed, true)
        const expected = sha(
          'sha1',
          files
            .map((f) => sha('sha1', f.data))
            .sort()
            .join(''),
        )
        assert.equal(karp?.packageVerificationCode?.packageVerificationCodeValue, expected)
      })

      it('uses only well-formed, unique ids, and every relationship names an element of the document', () => {
        const ids = [...doc.packages, ...doc.files].map((e) => e.SPDXID)
        assert.equal(new Set(ids).size, ids.length)
        for (const id of ids) assert.match(id, /^SPDXRef-[A-Za-z0-9.-]+$/)
        const known = new Set([...ids, 'SPDXRef-DOCUMENT'])
        for (const r of doc.relationships) {
          assert.ok(known.has(r.spdxElementId), r.spdxElementId)
          assert.ok(known.has(r.relatedSpdxElement), r.relatedSpdxElement)
        }
        // SPDX: a package whose files are not analysed may contain no files.
        for (const p of doc.packages.filter((p) => !p.filesAnalyzed)) {
          const fileIds = new Set(doc.files.map((f) => f.SPDXID))
          assert.ok(
            related(doc, p.SPDXID, 'CONTAINS').every((id) => !fileIds.has(id)),
            p.SPDXID,
          )
        }
      })
    })
  }

  it('is deterministic: created from SOURCE_DATE_EPOCH, namespace from the digest, same input same bytes', () => {
    const first = sbomJson(buildSbom(input('amd64')))
    const second = sbomJson(buildSbom(input('amd64')))
    assert.equal(first, second)
    const doc = buildSbom(input('amd64', {sourceDateEpoch: 1_700_000_000}))
    assert.equal(doc.creationInfo.created, '2023-11-14T22:13:20Z')
    assert.equal(doc.documentNamespace, `https://ghcr.io/karp-vip/karp-agent/spdx/amd64/sha256-${'ab12'.repeat(16)}`)
    assert.ok(!doc.documentNamespace.includes('#'))
    const other = buildSbom(input('amd64', {image: {name: definition.name, tag: 'v0.1.0', arch: 'amd64', manifestDigest: OTHER_DIGEST}}))
    assert.notEqual(other.documentNamespace, doc.documentNamespace)
  })

  it('does not depend on the order of its inputs', () => {
    const base = input('arm64')
    const shuffled = {...base, packages: [...base.packages].reverse(), karp: {...base.karp, files: [...base.karp.files].reverse()}}
    assert.equal(sbomJson(buildSbom(shuffled)), sbomJson(buildSbom(base)))
  })

  it('refuses packages of the other architecture, a digest that is not sha256, and a fractional epoch', () => {
    const amd64 = lockedPackages(lock, 'amd64', definition.packages)
    assert.throws(
      () => buildSbom(input('arm64', {packages: amd64})),
      /arm64 SBOM was given packages of another architecture: base-files \(amd64\)/,
    )
    assert.throws(
      () => buildSbom(input('amd64', {image: {name: definition.name, tag: 'v0.1.0', arch: 'amd64', manifestDigest: 'sha256:abc'}})),
      /sha256:<64 hex>/,
    )
    assert.throws(() => buildSbom(input('amd64', {sourceDateEpoch: 1.5})), /whole number of seconds/)
  })

  it('refuses static links of a file or package it does not list', () => {
    assert.throws(
      () => buildSbom(input('amd64', {staticLinks: {'/usr/bin/other': tlsLinks}})),
      /\/usr\/bin\/other, which is not among karp's files/,
    )
    assert.throws(
      () => buildSbom(input('amd64', {staticLinks: {[tlsPath]: ['libssl3']}})),
      /libssl3, which is not among the build packages/,
    )
  })

  it('spells characters SPDX ids do not allow without making two ids equal', () => {
    const pkg = (name: string): LockedPackage => ({...(lockedPackages(lock, 'amd64', ['libc6'])[0] as LockedPackage), name})
    const doc = buildSbom(input('amd64', {packages: [pkg('libstdc++6'), pkg('libstdc--6')], buildPackages: [], staticLinks: {}}))
    const ids = doc.packages.map((p) => p.SPDXID)
    assert.ok(ids.includes('SPDXRef-Package-deb-libstdc-2b--2b-6'), ids.join(' '))
    assert.ok(ids.includes('SPDXRef-Package-deb-libstdc--6'))
  })

  it('names the file build/image/sbom/ holds per architecture', () => {
    assert.equal(sbomFileName({name: definition.name, arch: 'arm64'}), 'karp-agent-arm64.spdx.json')
  })
})
