/**
 * Where the relay reports what it handled itself: internal errors behind a 500, a store that
 * failed, a socket closed on shutdown. `context` names the request, document or caller.
 */
export type RelayLog = (
  level: 'info' | 'warn' | 'error',
  message: string,
  context?: Record<string, unknown>,
) => void;

/** The default {@link RelayLog}: warnings and errors as JSON lines on stderr, info dropped (tests stay quiet). */
export const consoleRelayLog: RelayLog = (level, message, context) => {
  if (level === 'info') return;
  const entry: Record<string, unknown> = { level, source: 'relay', message, ...context };
  const cause = context?.error;
  if (cause instanceof Error) entry.error = { name: cause.name, message: cause.message, stack: cause.stack };
  console.error(JSON.stringify(entry));
};
