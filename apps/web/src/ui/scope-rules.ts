import { h } from './dom.ts';

/** How a scope is explained at the top of its section, in three short answers. */
export interface ScopeRules {
  /** The scope or kind of object, shown as a badge: `USER_PRIVATE`, `blob`, … */
  readonly scope: string;
  /** The badge colour class: private, public, read, rw or blob. */
  readonly tone: 'private' | 'public' | 'read' | 'rw' | 'blob' | 'plain';
  readonly read: string;
  readonly write: string;
  /** What the relay keeps of it. */
  readonly stored: string;
}

/** A scope badge. */
export function scopeBadge(scope: string, tone: ScopeRules['tone']): HTMLElement {
  return h('span', { class: `badge ${tone}` }, scope);
}

/** The strip under a section title: the scope and who may read and write it. */
export function scopeRules(rules: ScopeRules): HTMLElement {
  return h(
    'div',
    { class: 'rules', dataset: { testid: 'scope-rules' } },
    scopeBadge(rules.scope, rules.tone),
    h('span', { class: 'rule' }, h('b', null, 'Read: '), rules.read),
    h('span', { class: 'rule' }, h('b', null, 'Write: '), rules.write),
    h('span', { class: 'rule' }, h('b', null, 'Relay stores: '), rules.stored),
  );
}
