/** A document in my list: one I created, or one shared with me that I opened. */
export interface DocListItem {
  /** The blob id (the document is `blob/<id>`). */
  readonly id: string;
  readonly title: string;
  /** True for documents I created (and so own and can share). */
  readonly owned: boolean;
}

/**
 * The list of documents in the tour's sidebar, per user, in localStorage. The relay has no
 * "documents shared with me" listing (a blob is found by its id), so this is only the tour's
 * memory of which ids it has seen; the documents themselves live in the client's store.
 */
export class DocList {
  readonly #key: string;
  #items: DocListItem[];

  constructor(userId: string) {
    this.#key = `scopesync-tour:docs:${userId}`;
    this.#items = load(this.#key);
  }

  /** Every document, mine first, in the order they were added. */
  get items(): readonly DocListItem[] {
    return [...this.#items.filter((item) => item.owned), ...this.#items.filter((item) => !item.owned)];
  }

  /** The entry for `id`, if listed. */
  get(id: string): DocListItem | undefined {
    return this.#items.find((item) => item.id === id);
  }

  /** Adds or updates an entry. */
  put(item: DocListItem): void {
    const index = this.#items.findIndex((existing) => existing.id === item.id);
    if (index >= 0) this.#items[index] = item;
    else this.#items.push(item);
    this.#save();
  }

  /** Removes an entry. */
  remove(id: string): void {
    this.#items = this.#items.filter((item) => item.id !== id);
    this.#save();
  }

  #save(): void {
    try {
      localStorage.setItem(this.#key, JSON.stringify(this.#items));
    } catch (error) {
      // Storage full or disabled: the list lasts until reload, the documents are unaffected.
      console.warn('scopesync tour: could not save the document list', error);
    }
  }
}

function load(key: string): DocListItem[] {
  try {
    const parsed: unknown = JSON.parse(localStorage.getItem(key) ?? '[]');
    if (!Array.isArray(parsed)) return [];
    return parsed.filter(
      (item): item is DocListItem =>
        typeof item === 'object' &&
        item !== null &&
        typeof item.id === 'string' &&
        typeof item.title === 'string' &&
        typeof item.owned === 'boolean',
    );
  } catch {
    // A corrupt entry is not worth failing the tour over: start an empty list.
    return [];
  }
}
