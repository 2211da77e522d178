import { type Child, h } from './dom.ts';
import { type ScopeRules, scopeRules } from './scope-rules.ts';

/** The heading of a tour section. */
export interface SectionHeading {
  readonly id: string;
  readonly title: string;
  /** One or two sentences: what this shows and why it matters. */
  readonly lead: string;
  /** Who may read and write, when the section is about one scope. */
  readonly rules?: ScopeRules;
}

/** A section element with its title, lead and scope rules above `content`. */
export function sectionFrame(heading: SectionHeading, ...content: Child[]): HTMLElement {
  return h(
    'section',
    {
      class: 'section',
      id: `section-${heading.id}`,
      dataset: { testid: `section-${heading.id}` },
      hidden: true,
    },
    h(
      'header',
      null,
      h('h2', null, heading.title),
      h('p', { class: 'lead' }, heading.lead),
      heading.rules ? scopeRules(heading.rules) : null,
    ),
    ...content,
  );
}
