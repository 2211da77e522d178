/** What {@link call} resolves with. */
export interface HttpAnswer {
  readonly status: number;
  readonly headers: Headers;
  /** The body parsed as JSON, or undefined when it is empty or not JSON. */
  // biome-ignore lint/suspicious/noExplicitAny: tests check bodies with expect(); typing each one adds nothing.
  readonly json: any;
  readonly bytes: Uint8Array;
}

/** Options of one {@link call}. */
export interface CallOptions {
  /** The API key, sent as x-api-key. */
  readonly key?: string | undefined;
  /** A JSON body (objects are stringified) or raw bytes/text. */
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
}

/** One HTTP request to the relay, answered whatever the status. */
export async function call(
  base: string,
  method: string,
  path: string,
  options: CallOptions = {},
): Promise<HttpAnswer> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.key !== undefined) headers['x-api-key'] = options.key;
  let body: BodyInit | null = null;
  if (options.body instanceof Uint8Array || typeof options.body === 'string') body = options.body as BodyInit;
  else if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers['content-type'] ??= 'application/json';
  }
  const response = await fetch(`${base}${path}`, { method, headers, body });
  const bytes = new Uint8Array(await response.arrayBuffer());
  let json: unknown;
  try {
    json = bytes.length ? JSON.parse(new TextDecoder().decode(bytes)) : undefined;
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, json, bytes };
}

/** `encodeURIComponent`, for keys and blob ids in paths. */
export const enc = encodeURIComponent;
