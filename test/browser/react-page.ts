/**
 * The page of react-hooks.test.ts: a small React app on @scopesync/react, rendered in
 * StrictMode (effects run twice) with the client's defaults (IndexedDB, the browser's
 * WebSocket). A shared pad is a CodeMirror 6 editor bound with y-codemirror.next to the
 * hook's provider, with no glue but `provider.bind`. Query: `relay`, `name` (mine, shown to
 * the others), `essay` (a doc to show read-only), `unguarded` (show it editable all the same:
 * typing is then refused and the client rebuilds the doc).
 */
import { EditorState } from '@codemirror/state';
import { EditorView } from '@codemirror/view';
import { createClient } from '@scopesync/client';
import {
  ScopeSyncProvider,
  useDoc,
  useDocSelector,
  usePresence,
  useSyncStatus,
  useUserData,
} from '@scopesync/react';
import { createElement as h, StrictMode, useEffect, useRef, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { yCollab } from 'y-codemirror.next';

const params = new URLSearchParams(location.search);
const me = params.get('name') ?? 'anonymous';
const color = me === 'Ada' ? '#c2185b' : '#1565c0';
const PAD = 'PUBLIC_RW/_/pad';
const SETTINGS = 'PUBLIC_RW/_/settings';
const unguarded = params.has('unguarded');

/** A CodeMirror editor on `Y.Text` "t" of a doc, read-only when the relay says so. */
function CollabEditor({ name, testId, guard }: { name: string; testId: string; guard: boolean }) {
  const { provider, readOnly: mayNotWrite, synced, error, doc } = useDoc(name);
  const readOnly = guard && mayNotWrite;
  const parent = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const host = parent.current;
    if (!provider || !host) return;
    // bind() builds the editor now, and again on the new doc and awareness after a reset.
    return provider.bind(({ doc, awareness }) => {
      const text = doc.getText('t');
      const view = new EditorView({
        parent: host,
        state: EditorState.create({
          doc: text.toString(),
          extensions: [
            yCollab(text, awareness),
            EditorState.readOnly.of(readOnly),
            EditorView.editable.of(!readOnly),
          ],
        }),
      });
      return () => view.destroy();
    });
  }, [provider, readOnly]);
  const text = useDocSelector(provider, (doc) => doc.getText('t').toString());
  return h(
    'section',
    {
      'data-testid': testId,
      'data-synced': String(synced),
      'data-readonly': String(readOnly),
      'data-error': error?.kind ?? '',
      'data-client-id': String(doc?.clientID ?? ''),
    },
    h('div', { ref: parent, className: 'editor' }),
    h('pre', { 'data-testid': `${testId}-text` }, text ?? ''),
  );
}

/** Who else has the pad open, by name. */
function People() {
  const presence = usePresence<{ user?: { name: string; color: string } }>(PAD);
  const { setLocalField } = presence;
  useEffect(() => setLocalField('user', { name: me, color }), [setLocalField]);
  const names = presence.others.map((peer) => peer.state.user?.name ?? '?').sort();
  return h('p', { 'data-testid': 'people' }, names.join(','));
}

/** A shared setting anyone may change, live. */
function Setting() {
  const { value, set, pending } = useUserData<{ theme: string }>(SETTINGS);
  return h(
    'p',
    null,
    h('span', { 'data-testid': 'setting', 'data-pending': String(pending) }, value?.theme ?? '(none)'),
    h(
      'button',
      { type: 'button', 'data-testid': 'set-light', onClick: () => void set({ theme: 'light' }) },
      'Light',
    ),
  );
}

function Status() {
  const { status } = useSyncStatus();
  return h('p', { 'data-testid': 'status' }, status);
}

function App() {
  const [padOpen, setPadOpen] = useState(true);
  const essay = params.get('essay');
  return h(
    'main',
    null,
    h(Status),
    h(Setting),
    h(
      'button',
      { type: 'button', 'data-testid': 'toggle-pad', onClick: () => setPadOpen((open) => !open) },
      'Pad',
    ),
    padOpen ? h('div', null, h(CollabEditor, { name: PAD, testId: 'pad', guard: true }), h(People)) : null,
    essay ? h(CollabEditor, { name: essay, testId: 'essay', guard: !unguarded }) : null,
  );
}

async function start(): Promise<void> {
  const client = await createClient({
    url: params.get('relay') ?? '',
    deviceName: `react ${me}`,
    backoff: { initialMs: 50, maxMs: 500 },
  });
  const root = document.createElement('div');
  document.body.append(root);
  createRoot(root).render(h(StrictMode, null, h(ScopeSyncProvider, { client }, h(App))));
  (globalThis as unknown as { userId: string | undefined }).userId = client.userId;
}

void start();
