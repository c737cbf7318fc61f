// Time-window conditions: local weekday and minute in an IANA time zone (via Intl), windows that may cross midnight.
// @see https://tc39.es/ecma402/#datetimeformat-objects

export const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
export type Day = (typeof DAYS)[number];

export interface TimeWindow {
  /** Bit i set = day DAYS[i] is a start day of the window. */
  readonly dayMask: number;
  /** Minutes since local midnight, inclusive. */
  readonly from: number;
  /** Minutes since local midnight, exclusive; 1440 = end of day. to < from means the window crosses midnight. */
  readonly to: number;
  readonly tz: string;
  readonly text: string;
}

/** Parses "HH:MM" (00:00..23:59; "24:00" only when allowEnd). */
export function parseClock(s: string, allowEnd: boolean): number | undefined {
  const m = /^([01][0-9]|2[0-4]):([0-5][0-9])$/.exec(s);
  if (m === null) return undefined;
  const h = Number(m[1]);
  const min = Number(m[2]);
  if (h === 24 && (min !== 0 || !allowEnd)) return undefined;
  return h * 60 + min;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (f === undefined) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      weekday: 'short',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    });
    formatters.set(tz, f);
  }
  return f;
}

/** Whether the zone is a valid IANA name known to this runtime. */
export function isValidTimeZone(tz: string): boolean {
  try {
    formatter(tz);
    return true;
  } catch {
    return false;
  }
}

export interface LocalTime {
  /** 0 = Sunday. */
  readonly day: number;
  readonly minute: number;
}

const WEEKDAY_INDEX: Record<string, number> = { Sun: 0, Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6 };

/** Local weekday and minute of the day at `at` in zone `tz` (DST handled by the runtime's tz database). */
export function localTime(at: Date, tz: string): LocalTime {
  let day = -1;
  let hour = -1;
  let minute = -1;
  for (const p of formatter(tz).formatToParts(at)) {
    if (p.type === 'weekday') day = WEEKDAY_INDEX[p.value] ?? -1;
    else if (p.type === 'hour') hour = Number(p.value) % 24;
    else if (p.type === 'minute') minute = Number(p.value);
  }
  // INVARIANT: an unreadable clock never satisfies a window (fail closed).
  if (day < 0 || hour < 0 || minute < 0 || Number.isNaN(hour) || Number.isNaN(minute)) {
    return { day: -1, minute: -1 };
  }
  return { day, minute: hour * 60 + minute };
}

/**
 * Whether local time `t` falls in window `w`. A window that crosses midnight (to < from) belongs to its start day:
 * `fri 22:00-06:00` covers Friday 22:00 to Saturday 06:00.
 */
export function inWindow(w: TimeWindow, t: LocalTime): boolean {
  if (t.day < 0) return false;
  const has = (d: number): boolean => ((w.dayMask >> ((d + 7) % 7)) & 1) === 1;
  if (w.from < w.to) return has(t.day) && t.minute >= w.from && t.minute < w.to;
  return (has(t.day) && t.minute >= w.from) || (has(t.day - 1) && t.minute < w.to);
}
