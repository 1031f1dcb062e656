import {scryptSync} from 'node:crypto'

import {PASSWORD_FINGERPRINT_ANNOTATION} from '../constants.js'

// N = 2^14, r = 8: 16 MiB and 86-112 ms per call on the 2-core test machine; render and install call it once.
const SCRYPT = {N: 2 ** 14, r: 8, p: 1}
const BYTES = 8

/**
 * The value of PASSWORD_FINGERPRINT_ANNOTATION, which rolls the agents when the CARP password changes (ucarp
 * reads it once). Anyone who may read DaemonSets sees it, so it must not give the password away: it is a salted,
 * memory-hard scrypt digest, truncated. A random password (karp's default, 19 characters, 114 bits) cannot
 * be recovered from it; a weak one you chose costs an attacker one scrypt (16 MiB, tens of ms) per guess,
 * with a salt per install, so no table computed in advance helps. Deterministic, so `karp render` gives
 * the same output for the same flags.
 */
export function passwordFingerprint(password: string, install: {namespace: string; name: string}): string {
  const salt = `${PASSWORD_FINGERPRINT_ANNOTATION}\0${install.namespace}/${install.name}`
  return `scrypt:${scryptSync(password, salt, BYTES, SCRYPT).toString('hex')}`
}
