import { DocList } from '../doc-list.ts';
import { type AuditEntry, myAuditEntries } from '../relay-api.ts';
import type { TourContext, TourSection } from '../tour-context.ts';
import { h, replaceChildren } from '../ui/dom.ts';
import { Notice } from '../ui/notice.ts';
import { sectionFrame } from '../ui/section-frame.ts';

const VERBS: Record<string, string> = {
  read: 'read',
  write: 'changed',
  delete: 'deleted',
  list: 'listed',
  share: 'changed the sharing of',
};

/** What an entry was about, in words: "your public profile", "document “Trip plan” (doc-1a2b…)". */
function describeTarget(entry: AuditEntry, docs: DocList): string {
  if (entry.scope === 'blob') {
    const title = docs.get(entry.key)?.title;
    return title && title !== entry.key ? `document “${title}” (${entry.key})` : `document ${entry.key}`;
  }
  if (entry.scope === 'USER_PUBLIC' && entry.key === 'profile') return 'your public profile';
  if (entry.scope === 'USER_PRIVATE') return `your private ${entry.key || 'data'}`;
  return `${entry.scope}/${entry.key}`;
}

/** Step 7: the audit log entries about my data — who read my profile, who opened my documents. */
export function activitySection({ client, userId }: TourContext): TourSection {
  const notice = new Notice('activity-notice');
  const body = h('tbody', { dataset: { testid: 'activity-rows' } });
  const refreshed = h('span', { class: 'small muted grow' });

  const refresh = async () => {
    notice.clear();
    try {
      const entries = await myAuditEntries(client);
      // The tour's list of documents (read afresh: it grows), to name them by title.
      const docs = new DocList(userId);
      refreshed.textContent = `Updated ${new Date().toLocaleTimeString()}`;
      if (entries.length === 0) {
        replaceChildren(
          body,
          h('tr', null, h('td', { colSpan: 4, class: 'empty' }, 'Nobody else has touched your data yet.')),
        );
        return;
      }
      replaceChildren(
        body,
        ...entries
          .slice(0, 50)
          .map((entry) =>
            h(
              'tr',
              { dataset: { testid: 'activity-row', action: entry.action, accessor: entry.accessor } },
              h('td', { class: 'muted' }, new Date(entry.timestamp).toLocaleTimeString()),
              h('td', null, entry.accessor === userId ? 'You' : h('code', null, entry.accessor)),
              h('td', null, `${VERBS[entry.action] ?? entry.action} ${describeTarget(entry, docs)}`),
              h(
                'td',
                { class: entry.result === 'ok' ? 'result-ok' : 'result-denied', title: entry.reason ?? '' },
                entry.result === 'ok' ? 'allowed' : 'denied',
              ),
            ),
          ),
      );
    } catch (error) {
      notice.error(error, 'load the activity log');
    }
  };

  const element = sectionFrame(
    {
      id: 'activity',
      title: 'Activity',
      lead:
        'The relay writes an audit entry whenever someone touches data that belongs to someone else, and for ' +
        'every refused attempt. Entries are hash-chained, so a gap or an edit shows. Here are the ones about your data.',
    },
    h(
      'div',
      { class: 'card' },
      h(
        'div',
        { class: 'row' },
        refreshed,
        h(
          'button',
          {
            type: 'button',
            class: 'small',
            dataset: { testid: 'activity-refresh' },
            on: { click: () => void refresh() },
          },
          'Refresh',
        ),
      ),
      notice.element,
      h(
        'table',
        { class: 'activity' },
        h(
          'thead',
          null,
          h(
            'tr',
            null,
            h('th', null, 'When'),
            h('th', null, 'Who'),
            h('th', null, 'What'),
            h('th', null, 'Result'),
          ),
        ),
        body,
      ),
    ),
  );
  return { id: 'activity', title: 'Activity', hint: 'audit log', element, onShow: () => void refresh() };
}
