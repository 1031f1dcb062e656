/**
 * How every message shows a value that came from outside (a flag, a file, a server's answer): it may be of
 * any length and hold control characters that would move the cursor, retitle or clear the terminal, or
 * hide text. Shown quoted, escaped and capped, so one bad value stays one readable line.
 */

/** Characters of a value shown before it is cut; the rest is summarised by its length. */
export const ECHO_MAX_CHARS = 60

// C0/C1 controls and DEL, format characters (bidi overrides, zero-width joiners) and line/paragraph separators.
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u
const UNPRINTABLE_ALL = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu

const NAMED: Record<string, string> = {'\n': '\\n', '\r': '\\r', '\t': '\\t'}

function escapeChar(char: string): string {
  const named = NAMED[char]
  if (named) return named
  const code = char.codePointAt(0) as number
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`
}

/** The text with every unprintable character written as an escape (\n, \x1b, \u{202e}); the rest as is. */
export function escapeControl(text: string): string {
  return UNPRINTABLE.test(text) ? text.replace(UNPRINTABLE_ALL, escapeChar) : text
}

/**
 * A value for a message: in double quotes, `"` and `\` escaped, unprintable characters escaped, and cut
 * after ECHO_MAX_CHARS characters with an ellipsis and the full length: "aaaa…" (500 characters).
 */
export function echo(value: string, max = ECHO_MAX_CHARS): string {
  const chars = [...value]
  const shown = chars.length > max ? chars.slice(0, max) : chars
  const body = shown.map((c) => (c === '"' || c === '\\' ? `\\${c}` : UNPRINTABLE.test(c) ? escapeChar(c) : c)).join('')
  return chars.length > max ? `"${body}…" (${chars.length} characters)` : `"${body}"`
}
