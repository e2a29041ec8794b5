import type { AskRequest } from './ask.js';
import { askText, wrap } from './ask.js';
import { type ItemState, itemNumber, type MenuItem, type RowHit } from './model.js';

/**
 * Pure layout of the menu and the ask dialog: a centred box and a list of draw operations in
 * window pixels. The renderer only paints these; tests check pixels at these rectangles.
 */
export interface FontMetrics {
  readonly charWidth: number;
  readonly ascent: number;
  readonly descent: number;
}

export interface Size {
  readonly width: number;
  readonly height: number;
}

export interface Rect {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

export type ColorRole =
  | 'bg'
  | 'border'
  | 'titleBg'
  | 'titleFg'
  | 'text'
  | 'dim'
  | 'phrase'
  | 'selBg'
  | 'selFg'
  | 'badgeFg'
  | `badge-${ItemState}`;

/** 0xRRGGBB per role: amber frame and title (the trusted host look), dark body, one hue per state. */
export const PALETTE: Readonly<Record<ColorRole, number>> = {
  bg: 0x1e2430,
  border: 0xf0c040,
  titleBg: 0xf0c040,
  titleFg: 0x101010,
  text: 0xe8e8e8,
  dim: 0x9aa4b2,
  phrase: 0x7fd7ff,
  selBg: 0x3b6fd8,
  selFg: 0xffffff,
  badgeFg: 0xffffff,
  'badge-running': 0x2e9e4f,
  'badge-starting': 0xc07a10,
  'badge-stopping': 0xc07a10,
  'badge-stopped': 0x5b6472,
  'badge-crashed': 0xd03030,
  'badge-unknown': 0x5b6472,
};

export type DrawOp =
  | ({ readonly op: 'rect'; readonly color: ColorRole } & Rect)
  /** `y` is the text baseline, as X core text wants it. */
  | {
      readonly op: 'text';
      readonly x: number;
      readonly y: number;
      readonly text: string;
      readonly color: ColorRole;
    };

export interface MenuLayout {
  /** Where the window goes, in screen pixels. */
  readonly window: Rect;
  readonly ops: readonly DrawOp[];
  /** Clickable item rows, in window pixels (feed to the model as a `rows` event). */
  readonly rows: readonly RowHit[];
  /** Named parts for tests and the renderer: title, phrase, footer, badges. */
  readonly parts: Readonly<Record<string, Rect>>;
}

export const MENU_TITLE = 'kvmux';
export const FOOTER_HINT = (n: number): string =>
  `ScrLk ScrLk ${n > 1 ? `1-${Math.min(n, 9)}` : '1'} switches directly \xb7 Esc closes`;
export const BORDER = 3;
const BADGE_CHARS = 10;

/** Fit text into `max` characters with an ASCII ellipsis (the core font is ISO 8859-1). */
export function fitText(text: string, max: number): string {
  if (text.length <= max) return text;
  return max <= 3 ? text.slice(0, max) : `${text.slice(0, max - 3)}...`;
}

const lineHeight = (f: FontMetrics): number => f.ascent + f.descent + 8;

/** Box width in characters: the widest line, clamped so the box fits on screen with a margin. */
function columns(lines: readonly string[], f: FontMetrics, screen: Size, min: number): number {
  const widest = Math.max(min, ...lines.map((l) => l.length));
  const fitChars = Math.floor((screen.width - 4 * f.charWidth - 2 * BORDER) / f.charWidth) - 4;
  return Math.max(10, Math.min(widest, fitChars));
}

function centred(contentW: number, contentH: number, screen: Size): Rect {
  const width = contentW + 2 * BORDER;
  const height = contentH + 2 * BORDER;
  return {
    x: Math.max(0, Math.floor((screen.width - width) / 2)),
    y: Math.max(0, Math.floor((screen.height - height) / 2)),
    width,
    height,
  };
}

/** Frame, body and a title band carrying `title`; returns the ops and the inner origin. */
function frame(win: Rect, title: string, f: FontMetrics, pad: number): DrawOp[] {
  const lh = lineHeight(f);
  return [
    { op: 'rect', color: 'border', x: 0, y: 0, width: win.width, height: win.height },
    {
      op: 'rect',
      color: 'bg',
      x: BORDER,
      y: BORDER,
      width: win.width - 2 * BORDER,
      height: win.height - 2 * BORDER,
    },
    { op: 'rect', color: 'titleBg', x: BORDER, y: BORDER, width: win.width - 2 * BORDER, height: lh },
    { op: 'text', color: 'titleFg', x: BORDER + pad, y: BORDER + 4 + f.ascent, text: title },
  ];
}

interface RowSpec {
  readonly item: MenuItem;
  readonly number: number | null;
  readonly selected: boolean;
}

function rowOps(r: RowSpec, rect: Rect, f: FontMetrics, pad: number, nameChars: number): DrawOp[] {
  const base = rect.y + 4 + f.ascent;
  const fg: ColorRole = r.selected ? 'selFg' : 'text';
  const badgeW = BADGE_CHARS * f.charWidth;
  const badge: Rect = {
    x: rect.x + rect.width - pad - badgeW,
    y: rect.y + 2,
    width: badgeW,
    height: rect.height - 4,
  };
  const label = r.item.kind === 'admin' ? 'host' : r.item.state;
  const labelX = badge.x + Math.floor((badgeW - label.length * f.charWidth) / 2);
  return [
    ...(r.selected ? [{ op: 'rect', color: 'selBg', ...rect } as const] : []),
    {
      op: 'text',
      color: r.selected ? 'selFg' : 'dim',
      x: rect.x + pad,
      y: base,
      text: r.number === null ? ' ' : String(r.number),
    },
    {
      op: 'text',
      color: fg,
      x: rect.x + pad + 3 * f.charWidth,
      y: base,
      text: fitText(r.item.name, nameChars),
    },
    { op: 'rect', color: r.item.kind === 'admin' ? 'badge-unknown' : `badge-${r.item.state}`, ...badge },
    { op: 'text', color: 'badgeFg', x: labelX, y: base, text: label },
  ];
}

export interface MenuLayoutInput {
  readonly items: readonly MenuItem[];
  readonly selected: string | null;
  readonly phrase: string;
  readonly font: FontMetrics;
  readonly screen: Size;
}

/** The switcher: title band, the host phrase, one row per display, the direct-switch hint. */
export function layoutMenu(inp: MenuLayoutInput): MenuLayout {
  const { font: f, screen } = inp;
  const lh = lineHeight(f);
  const pad = 2 * f.charWidth;
  const footer = FOOTER_HINT(inp.items.length);
  const phraseLine = `host phrase: ${inp.phrase}`;
  const rowChars = 3 + Math.max(12, ...inp.items.map((i) => i.name.length)) + 1 + BADGE_CHARS;
  const cols = columns([footer, phraseLine, MENU_TITLE], f, screen, rowChars);
  const innerW = cols * f.charWidth + 2 * pad;
  const innerH = lh * (3 + inp.items.length) + 2 * 6;
  const win = centred(innerW, innerH, screen);
  const x0 = BORDER;
  const ops: DrawOp[] = frame(win, MENU_TITLE, f, pad);
  const phraseY = BORDER + lh + 6;
  ops.push({
    op: 'text',
    color: 'phrase',
    x: x0 + pad,
    y: phraseY + 4 + f.ascent,
    text: fitText(phraseLine, cols),
  });
  const rows: RowHit[] = [];
  const parts: Record<string, Rect> = {
    title: { x: x0, y: BORDER, width: innerW, height: lh },
    phrase: { x: x0 + pad, y: phraseY, width: fitText(phraseLine, cols).length * f.charWidth, height: lh },
  };
  const nameChars = cols - 3 - 1 - BADGE_CHARS;
  inp.items.forEach((item, i) => {
    const rect: Rect = { x: x0, y: phraseY + lh * (i + 1), width: innerW, height: lh };
    const spec: RowSpec = { item, number: itemNumber(i), selected: item.name === inp.selected };
    ops.push(...rowOps(spec, rect, f, pad, nameChars));
    rows.push({ name: item.name, ...rect });
    parts[`badge:${item.name}`] = {
      x: rect.x + rect.width - pad - BADGE_CHARS * f.charWidth,
      y: rect.y + 2,
      width: BADGE_CHARS * f.charWidth,
      height: lh - 4,
    };
  });
  const footY = phraseY + lh * (inp.items.length + 1) + 6;
  ops.push({ op: 'text', color: 'dim', x: x0 + pad, y: footY + 4 + f.ascent, text: fitText(footer, cols) });
  parts['footer'] = { x: x0 + pad, y: footY, width: fitText(footer, cols).length * f.charWidth, height: lh };
  return { window: win, ops, rows, parts };
}

/**
 * The `ask` dialog in the same style: title band, the question, every param on its own wrapped
 * line(s) (nothing cut off: a hidden `replace: true` would make the question a lie), the hint.
 */
export function layoutAsk(req: AskRequest, font: FontMetrics, screen: Size): MenuLayout {
  const lh = lineHeight(font);
  const pad = 2 * font.charWidth;
  const { question, details, hint } = askText(req);
  const title = `${MENU_TITLE} \xb7 confirm`;
  const cols = columns([question, ...details, hint, title], font, screen, 30);
  const body = [question, ...details].flatMap((l) => wrap(l, cols));
  const innerW = cols * font.charWidth + 2 * pad;
  const win = centred(innerW, lh * (body.length + 2) + 2 * 6, screen);
  const ops = frame(win, title, font, pad);
  const qY = BORDER + lh + 6;
  const line = (text: string, i: number, color: 'text' | 'dim') =>
    ops.push({
      op: 'text',
      color,
      x: BORDER + pad,
      y: qY + lh * i + 4 + font.ascent,
      text: fitText(text, cols),
    });
  body.forEach((text, i) => {
    line(text, i, 'text');
  });
  line(hint, body.length, 'dim');
  return {
    window: win,
    ops,
    rows: [],
    parts: {
      title: { x: BORDER, y: BORDER, width: innerW, height: lh },
      question: {
        x: BORDER + pad,
        y: qY,
        width: Math.max(...body.map((l) => l.length)) * font.charWidth,
        height: lh * body.length,
      },
    },
  };
}

/** Screen pixels → window pixels, for pointer events fed to the model. */
export function toWindow(layout: MenuLayout, x: number, y: number): { x: number; y: number } {
  return { x: x - layout.window.x, y: y - layout.window.y };
}
