// A table that renders only the rows in view (fixed row height), for lists of 10,000 rows. It asks
// for the next page when the view nears the end of what is loaded, and tells its owner which rows
// are on screen, so a refresh re-reads those alone.

import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';

export interface Column<T> {
  title: string;
  /** CSS grid track: `12rem`, `1fr`, `minmax(8rem, 2fr)`. */
  width: string;
  render: (row: T) => ComponentChildren;
  align?: 'right';
}

export interface VirtualTableProps<T> {
  rows: T[];
  columns: Column<T>[];
  rowKey: (row: T) => string;
  rowHeight?: number;
  /** Called when fewer than a screen of loaded rows are left below the view. */
  onNearEnd?: () => void;
  /** Items loaded behind the rows (a tree shows fewer rows than it holds): a change asks onNearEnd again. */
  loaded?: number;
  /** The rows on screen changed: first index and how many. */
  onWindow?: (start: number, count: number) => void;
  onSelect?: (row: T) => void;
  selected?: string | undefined;
  empty?: string;
  testId?: string;
}

const OVERSCAN = 8;

export function VirtualTable<T>(props: VirtualTableProps<T>) {
  const { rows, columns, rowKey, rowHeight = 32, onNearEnd, onWindow, onSelect, selected } = props;
  const scroller = useRef<HTMLDivElement>(null);
  const [view, setView] = useState({ top: 0, height: 600 });
  const template = columns.map((c) => c.width).join(' ');

  useEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const measure = (): void => setView({ top: el.scrollTop, height: el.clientHeight || 600 });
    measure();
    const observer = new ResizeObserver(measure);
    observer.observe(el);
    return () => observer.disconnect();
  }, []);

  const first = Math.max(0, Math.floor(view.top / rowHeight) - OVERSCAN);
  const visible = Math.ceil(view.height / rowHeight) + 2 * OVERSCAN;
  const last = Math.min(rows.length, first + visible);

  useEffect(() => {
    if (onNearEnd && rows.length - last < visible) onNearEnd();
  }, [rows.length, last, visible, onNearEnd, props.loaded]);
  useEffect(() => onWindow?.(first, last - first), [first, last, onWindow]);

  const shown = rows.slice(first, last);
  return (
    <div class="vtable" data-testid={props.testId}>
      <div class="vtable-head" style={{ gridTemplateColumns: template }}>
        {columns.map((c) => (
          <div class={c.align === 'right' ? 'num' : ''}>{c.title}</div>
        ))}
      </div>
      <div class="vtable-body" ref={scroller} onScroll={(e) => setView({ top: (e.currentTarget as HTMLDivElement).scrollTop, height: (e.currentTarget as HTMLDivElement).clientHeight })}>
        {rows.length === 0 ? <div class="empty">{props.empty ?? 'Nothing here.'}</div> : null}
        <div style={{ height: `${rows.length * rowHeight}px`, position: 'relative' }}>
          {shown.map((row, i) => {
            const key = rowKey(row);
            return (
              <div
                key={key}
                class={`vtable-row${selected === key ? ' selected' : ''}${onSelect ? ' clickable' : ''}`}
                data-key={key}
                style={{ gridTemplateColumns: template, top: `${(first + i) * rowHeight}px`, height: `${rowHeight}px` }}
                onClick={onSelect ? () => onSelect(row) : undefined}
              >
                {columns.map((c) => (
                  <div class={c.align === 'right' ? 'num' : ''}>{c.render(row)}</div>
                ))}
              </div>
            );
          })}
        </div>
      </div>
    </div>
  );
}
