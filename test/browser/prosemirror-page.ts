/**
 * The page of prosemirror-binding.test.ts: a ProseMirror editor bound with y-prosemirror (the
 * binding under TipTap's Collaboration + CollaborationCaret) to `client.provider(name)` with
 * `provider.bind`, and nothing else. Query: `relay`, `name` (mine, on my caret), `doc` (default:
 * my own USER_PUBLIC doc). The editor is never made read-only, so a reader's typing is refused
 * and the client rebuilds the doc.
 */
import { createClient } from '@scopesync/client';
import { schema } from 'prosemirror-schema-basic';
import { EditorState } from 'prosemirror-state';
import { EditorView } from 'prosemirror-view';
import { yCursorPlugin, ySyncPlugin } from 'y-prosemirror';

interface PageState {
  userId: string | undefined;
  docName: string;
  resets: number;
}

const params = new URLSearchParams(location.search);
const me = params.get('name') ?? 'anonymous';
const state: PageState = { userId: undefined, docName: '', resets: 0 };
(globalThis as unknown as { page: PageState }).page = state;

async function start(): Promise<void> {
  const client = await createClient({
    url: params.get('relay') ?? '',
    deviceName: `prosemirror ${me}`,
    backoff: { initialMs: 50, maxMs: 500 },
  });
  state.userId = client.userId;
  state.docName = params.get('doc') ?? `USER_PUBLIC/${client.userId}/pm`;
  const provider = client.provider(state.docName);
  provider.awareness.setLocalStateField('user', { name: me, color: me === 'Carol' ? '#2e7d32' : '#6a1b9a' });
  provider.on('reset', () => {
    state.resets += 1;
  });
  const host = document.createElement('div');
  host.dataset.testid = 'editor';
  document.body.append(host);
  provider.bind(({ doc, awareness }) => {
    const view = new EditorView(host, {
      state: EditorState.create({
        schema,
        plugins: [ySyncPlugin(doc.getXmlFragment('prosemirror')), yCursorPlugin(awareness)],
      }),
    });
    return () => view.destroy();
  });
  await provider.handle.whenSynced;
  host.dataset.synced = 'true';
}

void start();
