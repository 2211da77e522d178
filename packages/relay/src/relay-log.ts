/**
 * Where the relay reports what it handled itself: internal errors behind a 500, a store that
 * failed, a socket closed on shutdown (`warn`, `error`); every access `decide()` denied
 * (`notice`, with `denied: true`); and one line per HTTP request and per socket opened and
 * closed (`info`). `context` names the request, document or caller — never a key, a token or
 * document content.
 */
export type RelayLog = (level: RelayLogLevel, message: string, context?: Record<string, unknown>) => void;

/** The levels of {@link RelayLog}, least to most severe. */
export const RELAY_LOG_LEVELS = ['info', 'notice', 'warn', 'error'] as const;
/** A level of {@link RelayLog}. */
export type RelayLogLevel = (typeof RELAY_LOG_LEVELS)[number];

/** The default {@link RelayLog}: warnings and errors as JSON lines on stderr, info and notice dropped (tests stay quiet). */
export const consoleRelayLog: RelayLog = (level, message, context) => {
  if (level === 'info' || level === 'notice') return;
  const entry: Record<string, unknown> = { level, source: 'relay', message, ...context };
  const cause = context?.error;
  if (cause instanceof Error) entry.error = { name: cause.name, message: cause.message, stack: cause.stack };
  console.error(JSON.stringify(entry));
};
