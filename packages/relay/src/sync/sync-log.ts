/**
 * Where the sync layer reports problems it handled itself (a failed commit, a handler that
 * threw, a socket it closed) so that they are never swallowed, and (`info`) each socket it
 * opened and closed. `context` names the document, the socket or the caller involved.
 */
export type SyncLog = (
  level: 'info' | 'warn' | 'error',
  message: string,
  context?: Record<string, unknown>,
) => void;

/** The default {@link SyncLog}: warnings and errors as JSON lines on stderr, info dropped (tests stay quiet). */
export const consoleSyncLog: SyncLog = (level, message, context) => {
  if (level === 'info') return;
  const entry: Record<string, unknown> = { level, source: 'sync', message, ...context };
  const cause = context?.error;
  if (cause instanceof Error) entry.error = { name: cause.name, message: cause.message, stack: cause.stack };
  console.error(JSON.stringify(entry));
};
