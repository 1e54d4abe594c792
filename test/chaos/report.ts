/** The chaos suite's table: one row per scenario, printed as `# ` lines (shown by node's test runner). */
export interface Row {
  scenario: string;
  sent: number;
  failed: number;
  recovery: string;
  notes?: string;
}

const rows: Row[] = [];

export function record(row: Row): void {
  rows.push(row);
  console.log(`# chaos: ${row.scenario}: sent ${row.sent}, failed ${row.failed}, recovery ${row.recovery}${row.notes ? ` (${row.notes})` : ''}`);
}

export function printTable(): void {
  const lines = [
    '| scenario | sent | failed | recovery | notes |',
    '|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.scenario} | ${r.sent} | ${r.failed} | ${r.recovery} | ${r.notes ?? ''} |`),
  ];
  console.log(lines.map((l) => `# ${l}`).join('\n'));
}
