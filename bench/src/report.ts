import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PEER_NAMES, type PeerName } from './servers/peer.ts';

/**
 * One cell: a number, a word (pass / fail / n/a / missing / timeout), or an error message.
 * `null` means not measured.
 */
export type Cell = number | string | null;

/** One measured figure with every server's value from the same run. */
export interface MetricRow {
  readonly metric: string;
  readonly unit: string;
  /** Which way is better, for reading the ratio; null for figures that are not a race. */
  readonly better: 'lower' | 'higher' | null;
  readonly values: Partial<Record<PeerName, Cell>>;
  readonly note?: string;
}

/** What one workload produced. */
export interface WorkloadReport {
  readonly id: string;
  readonly title: string;
  readonly rows: MetricRow[];
  readonly notes: string[];
  /** Raw per-step data (ramps, samples counts) for results.json only. */
  readonly details?: unknown;
}

/** Everything one run produced. */
export interface RunReport {
  readonly mode: 'quick' | 'full';
  readonly startedAt: string;
  readonly durationS: number;
  readonly machine: Readonly<Record<string, string | number>>;
  readonly workloads: WorkloadReport[];
  readonly complete: boolean;
  /** The sizes, steps and limits the run used. */
  readonly config: unknown;
}

const PEER_LABEL: Record<PeerName, string> = {
  scopesync: 'scopesync',
  'y-websocket': 'y-websocket 2.1',
  hocuspocus: 'Hocuspocus 3 + SQLite',
};

/** ours ÷ peer, when both are finite numbers and the peer's is not zero. */
export function ratio(row: MetricRow, peer: PeerName): number | null {
  const ours = row.values.scopesync;
  const theirs = row.values[peer];
  if (typeof ours !== 'number' || typeof theirs !== 'number') return null;
  if (!Number.isFinite(ours) || !Number.isFinite(theirs) || theirs === 0) return null;
  return ours / theirs;
}

function formatNumber(value: number): string {
  if (Number.isNaN(value)) return 'n/a';
  if (!Number.isFinite(value)) return '∞';
  const abs = Math.abs(value);
  if (abs >= 100) return Math.round(value).toLocaleString('en-US');
  if (abs >= 10) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  return value.toPrecision(2);
}

function formatCell(cell: Cell | undefined): string {
  if (cell === null || cell === undefined) return '—';
  if (typeof cell === 'number') return formatNumber(cell);
  return cell.replaceAll('|', '\\|').replaceAll('\n', ' ');
}

function formatRatio(row: MetricRow, peer: PeerName): string {
  const r = ratio(row, peer);
  if (r === null) return '—';
  const text = `${r.toFixed(2)}×`;
  if (row.better === null || Math.abs(r - 1) < 0.05) return text;
  const lead = row.better === 'lower' ? r < 1 : r > 1;
  return `${text} ${lead ? 'lead' : 'trail'}`;
}

/**
 * A Markdown table padded the way Biome formats one (so `biome check` passes on the
 * generated file): the first `leftColumns` left-aligned, the rest right-aligned.
 */
function table(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  leftColumns: number,
): string[] {
  const width = (text: string): number => [...text].length;
  const widths = header.map((h, c) => Math.max(3, width(h), ...rows.map((r) => width(r[c] ?? ''))));
  const pad = (text: string, c: number): string => {
    const fill = ' '.repeat(widths[c]! - width(text));
    return c < leftColumns ? text + fill : fill + text;
  };
  const line = (cells: readonly string[]): string =>
    `| ${cells.map((cell, c) => pad(cell, c)).join(' | ')} |`;
  const rule = widths.map((w, c) => (c < leftColumns ? '-'.repeat(w) : `${'-'.repeat(w - 1)}:`));
  return [line(header), `| ${rule.join(' | ')} |`, ...rows.map(line)];
}

/** Placeholder the lead replaces with a reading of the full run's numbers. */
export const READING_PLACEHOLDER =
  '_To be written from the full run: where scopesync leads, where it trails, and why._';

/** Renders the report as Markdown: one table, the notes, and the reading section. */
export function renderMarkdown(report: RunReport, reading = READING_PLACEHOLDER): string {
  const peers = PEER_NAMES;
  const others = peers.filter((p) => p !== 'scopesync');
  const lines: string[] = [];
  lines.push('# scopesync benchmarks');
  lines.push('');
  lines.push(
    `Mode **${report.mode}**, ${report.startedAt}, ${report.durationS.toFixed(0)} s` +
      (report.complete ? '' : ' — **incomplete run**') +
      `. Machine: ${Object.entries(report.machine)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}.`,
  );
  lines.push('');
  lines.push(
    'Every server runs in its own child process on loopback, one at a time, driven by the same ' +
      'load generator (a stock y-protocols client). Ratios are scopesync ÷ peer; "lead" or "trail" ' +
      "reads them in the metric's better direction. scopesync is createRelay with a data dir: every bench client " +
      'registers its own key (POST /keys) and connects with ?key=; auth, ACL checks, audit and the durable ' +
      'SQLite store are on at their defaults (the workloads use PUBLIC_RW docs, which are not cross-user, ' +
      'so they append no audit entries). y-websocket runs with y-leveldb persistence, Hocuspocus with its ' +
      'SQLite extension on a file. Generated by `npm run bench' +
      (report.mode === 'quick' ? ':quick' : '') +
      '`; do not edit the table by hand.',
  );
  lines.push('');
  if (report.mode === 'quick') {
    lines.push(
      '**Quick mode**: fewer documents, shorter ramp steps, a prefix of automerge-paper and no 5k ' +
        'connections step. Indicative only; the full run (`npm run bench`) is the reference.',
    );
    lines.push('');
  }
  const header = [
    'Workload',
    'Metric',
    ...peers.map((p) => PEER_LABEL[p]),
    ...others.map((p) => `ours ÷ ${PEER_LABEL[p].split(' ')[0]}`),
  ];
  const body: string[][] = [];
  for (const workload of report.workloads) {
    workload.rows.forEach((row, i) => {
      const better =
        row.better === null ? '' : row.better === 'lower' ? 'lower is better' : 'higher is better';
      const qualifier = [row.unit, better].filter(Boolean).join(', ');
      const metric = `${row.metric}${qualifier ? ` (${qualifier})` : ''}${row.note ? ' ¹' : ''}`;
      body.push([
        i === 0 ? workload.title : '',
        metric,
        ...peers.map((p) => formatCell(row.values[p])),
        ...others.map((p) => formatRatio(row, p)),
      ]);
    });
  }
  lines.push(...table(header, body, 2));
  lines.push('');
  lines.push('## Notes');
  lines.push('');
  for (const workload of report.workloads) {
    const rowNotes = workload.rows.filter((r) => r.note).map((r) => `${r.metric}: ${r.note}`);
    const notes = [...workload.notes, ...rowNotes];
    if (notes.length === 0) continue;
    lines.push(`**${workload.title}**`);
    lines.push('');
    for (const note of notes) lines.push(`- ${note}`);
    lines.push('');
  }
  if (report.workloads.some((w) => w.rows.some((r) => r.note))) {
    lines.push('¹ the metric has a note above.');
    lines.push('');
  }
  lines.push(
    'Editing traces: josephg/editing-traces (automerge-paper by M. Kleppmann, friendsforever), CC BY 4.0.',
  );
  lines.push('');
  lines.push('## Reading');
  lines.push('');
  lines.push(reading);
  lines.push('');
  return lines.join('\n');
}

/** results.json: the same figures plus the ratios and each workload's raw details. */
export function renderJson(report: RunReport): string {
  const others = PEER_NAMES.filter((p) => p !== 'scopesync');
  const replacer = (_key: string, value: unknown): unknown =>
    typeof value === 'number' && !Number.isFinite(value) ? (Number.isNaN(value) ? null : 'Infinity') : value;
  return `${JSON.stringify(
    {
      ...report,
      workloads: report.workloads.map((w) => ({
        ...w,
        rows: w.rows.map((row) => ({
          ...row,
          ratios: Object.fromEntries(others.map((p) => [p, ratio(row, p)])),
        })),
      })),
    },
    replacer,
    2,
  )}\n`;
}

/** Writes results.md (reading section: placeholder) and results.json to `dir`. */
export async function writeReport(dir: string, report: RunReport): Promise<void> {
  await writeFile(join(dir, 'results.md'), renderMarkdown(report));
  await writeFile(join(dir, 'results.json'), renderJson(report));
}
