/**
 * Container image references as the OCI distribution reference grammar defines them (the grammar of
 * github.com/distribution/reference, which containerd and the kubelet parse):
 *
 *   reference  := name [ ":" tag ] [ "@" digest ]
 *   name       := [ domain "/" ] path-component { "/" path-component }      (at most 255 characters)
 *   domain     := host [ ":" port ]; host is a DNS name or an IPv6 address in brackets
 *   path-component := [a-z0-9]+ { separator [a-z0-9]+ }, separator := "." | "_" | "__" | "-"+
 *   tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
 *   digest     := sha256:<64 lowercase hex> | sha512:<128 lowercase hex>
 *
 * As the distribution library does, the first component is the registry only when it has a "." or a ":",
 * is "localhost", or has an uppercase letter; otherwise it is part of the repository (Docker Hub).
 * Everything is ASCII, so no shell metacharacter, space or control character can pass.
 */

export interface ImageReference {
  domain?: string
  path: string
  tag?: string
  digest?: string
}

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])'
const DOMAIN = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`)
const TAG = /^[\w][\w.-]{0,127}$/
const DIGEST = /^(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/
export const MAX_NAME_LENGTH = 255

/** The reference's parts, or why it is not one (a phrase to follow "expected ..."). */
export function parseImageReference(text: string): {ok: true; value: ImageReference} | {ok: false; why: string} {
  if (text.length === 0) return {ok: false, why: 'the reference is empty'}
  // Bounded before any pattern runs: a name is at most 255, a tag 128 and a digest 135 characters.
  if (text.length > MAX_NAME_LENGTH + 1 + 128 + 1 + 135) return {ok: false, why: `${text.length} characters is too long`}
  if (!/^[\x21-\x7e]+$/.test(text)) return {ok: false, why: 'only printable ASCII without spaces may appear'}

  const at = text.indexOf('@')
  const digest = at >= 0 ? text.slice(at + 1) : undefined
  let rest = at >= 0 ? text.slice(0, at) : text
  if (digest !== undefined && !DIGEST.test(digest))
    return {ok: false, why: 'the digest must be sha256:<64 lowercase hex digits> or sha512:<128>'}

  let tag: string | undefined
  const colon = rest.lastIndexOf(':')
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1)
    rest = rest.slice(0, colon)
    if (!TAG.test(tag)) return {ok: false, why: 'the tag must be 1 to 128 letters, digits, "_", "." or "-", not starting with "." or "-"'}
  }
  if (rest.length > MAX_NAME_LENGTH) return {ok: false, why: `the name is ${rest.length} characters; at most ${MAX_NAME_LENGTH}`}

  const components = rest.split('/')
  const first = components[0] as string
  const hasDomain =
    components.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase())
  const domain = hasDomain ? first : undefined
  if (domain !== undefined && !DOMAIN.test(domain))
    return {ok: false, why: 'the registry must be a host name or [IPv6 address], with an optional :port'}
  const path = (hasDomain ? components.slice(1) : components).join('/')
  if (!path.split('/').every((c) => PATH_COMPONENT.test(c))) {
    return {ok: false, why: 'the repository must be lowercase letters and digits, separated by "/", ".", "_", "__" or "-"'}
  }
  return {ok: true, value: {...(domain ? {domain} : {}), path, ...(tag ? {tag} : {}), ...(digest ? {digest} : {})}}
}
