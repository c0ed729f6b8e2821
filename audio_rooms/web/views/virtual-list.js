// A scrolling list of thousands of rows that stays smooth on a phone: only the rows in view,
// plus a margin either side, are in the DOM. Rows have one fixed height, so the row at any
// scroll offset is a division away, and a spacer as tall as every row together gives the
// scrollbar its true size. Rows not read yet (the audience is read page by page) are drawn as
// placeholders, and nearing the end of what is read asks for more.
//
// The element is made once and kept: the room view re-renders around it, and putting the same
// element back (keeping its scroll offset, see `keep()`) is what keeps the reader's place.

import { h, replaceChildrenKeepingFocus } from "../dom.js";

export class VirtualList {
  /**
   * rowHeight: px, the height of every row (CSS takes it from `--row`).
   * overscan: rows drawn beyond each edge of the view, so a fast flick does not show blanks.
   * nearEnd: rows before the end of what is read at which `onNearEnd()` asks for more.
   * renderRow(item, index) and renderPlaceholder(index): the row's contents (an <li>'s).
   */
  constructor({ rowHeight, overscan = 10, nearEnd = 30, renderRow, renderPlaceholder, onNearEnd,
    label, testid, id }) {
    this.rowHeight = rowHeight;
    this.overscan = overscan;
    this.nearEnd = nearEnd;
    this.renderRow = renderRow;
    this.renderPlaceholder = renderPlaceholder;
    this.onNearEnd = onNearEnd;
    this.items = [];
    this.total = 0;
    this.hasMore = false;
    this.generation = 0; // bumped whenever the items change, so rows are redrawn
    this.drawn = -1; // the generation the rows in the DOM were made from
    this.first = 0; // the rows in the DOM: [first, last)
    this.last = 0;
    this.frame = 0;
    this.rows = h("ul", { class: "virtual-rows", role: "list" });
    this.spacer = h("div", { class: "virtual-spacer" }, this.rows);
    // Focusable, so the list scrolls from the keyboard (arrows, Page Down, End).
    this.element = h("div", { class: "virtual-list", tabindex: "0", role: "region",
      "aria-label": label, testid, id, onscroll: () => this.schedule() }, this.spacer);
    this.element.style.setProperty("--row", `${rowHeight}px`);
  }

  /** New data: `items` read so far, `total` rows the list spans, `hasMore` pages to read. */
  update(items, total, hasMore) {
    this.items = items;
    this.total = Math.max(total, items.length);
    this.hasMore = hasMore;
    this.generation += 1;
    // Taken out of the page (the room is re-rendering around it), it has no scroll offset to
    // draw from: the view draws it once it is back (keep()).
    if (this.element.isConnected) this.draw();
  }

  /** The scroll offset, to put back after the element was taken out and put in again. */
  keep() {
    const top = this.element.scrollTop;
    return () => {
      if (this.element.isConnected && this.element.scrollTop !== top) {
        this.element.scrollTop = top;
      }
      this.draw();
    };
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  /** The rows in view, plus the margin: [first, last). */
  range() {
    const top = this.element.scrollTop;
    const height = this.element.clientHeight || this.rowHeight * 10;
    const first = Math.max(0, Math.floor(top / this.rowHeight) - this.overscan);
    const last = Math.min(this.total, Math.ceil((top + height) / this.rowHeight) + this.overscan);
    return [first, Math.max(first, last)];
  }

  draw() {
    this.spacer.style.setProperty("block-size", `${this.total * this.rowHeight}px`);
    const [first, last] = this.range();
    if (this.drawn !== this.generation || last <= this.first || first >= this.last) {
      // New data (at most once a second) or a jump: every row drawn afresh.
      replaceChildrenKeepingFocus(this.rows, this.makeRows(first, last));
      this.drawn = this.generation;
    } else if (first !== this.first || last !== this.last) {
      // Scrolled: rows that stay in view stay as they are; only those coming in are made.
      for (let i = this.first; i < first; i += 1) this.rows.firstElementChild.remove();
      for (let i = last; i < this.last; i += 1) this.rows.lastElementChild.remove();
      this.rows.prepend(...this.makeRows(first, Math.min(this.first, last)));
      this.rows.append(...this.makeRows(Math.max(this.last, first), last));
    }
    this.first = first;
    this.last = last;
    this.rows.style.setProperty("inset-block-start", `${first * this.rowHeight}px`);
    if (this.hasMore && last + this.nearEnd >= this.items.length) this.onNearEnd();
  }

  makeRows(from, to) {
    const rows = [];
    for (let i = from; i < to; i += 1) {
      const item = this.items[i];
      rows.push(h("li", {
        class: item ? "virtual-row" : "virtual-row placeholder",
        "aria-setsize": String(this.total), "aria-posinset": String(i + 1),
        "aria-hidden": item ? null : "true",
      }, item ? this.renderRow(item, i) : this.renderPlaceholder(i)));
    }
    return rows;
  }

  /** Stop drawing (the view went away). */
  dispose() {
    cancelAnimationFrame(this.frame);
    this.frame = 0;
  }
}
