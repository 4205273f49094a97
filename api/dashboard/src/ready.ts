// A performance mark when a page first shows its data (`dashboard:overview`, `dashboard:market`):
// the benchmark (tests/bench, "interactive within 1 s") reads them instead of guessing from the DOM.

const marked = new Set<string>();

export function markReady(page: string): void {
  if (marked.has(page)) return;
  marked.add(page);
  // After the browser has painted what was just drawn.
  requestAnimationFrame(() => setTimeout(() => performance.mark(`dashboard:${page}`), 0));
}
