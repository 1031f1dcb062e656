import Table from 'cli-table3'

const NO_BORDER = {
  top: '',
  'top-mid': '',
  'top-left': '',
  'top-right': '',
  bottom: '',
  'bottom-mid': '',
  'bottom-left': '',
  'bottom-right': '',
  left: '',
  'left-mid': '',
  mid: '',
  'mid-mid': '',
  right: '',
  'right-mid': '',
  middle: '',
}

/**
 * Rows as kubectl prints them: a header, columns padded to their widest cell (colour codes not counted),
 * three spaces apart, no borders: easy to read, grep and cut.
 */
export function formatTable(head: string[], rows: string[][]): string[] {
  const table = new Table({head, chars: NO_BORDER, style: {head: [], border: [], 'padding-left': 0, 'padding-right': 3}})
  table.push(...rows)
  return table
    .toString()
    .split('\n')
    .map((line) => line.trimEnd())
}
