/** An instant as the operator's local date and time, to the second. */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toLocaleString(undefined, {
    year: 'numeric',
    month: 'short',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  });
}

/** A short description of a user agent: browser and system when recognisable. */
export function describeDevice(userAgent: string | null | undefined): string {
  if (!userAgent) return 'unknown device';
  const browser =
    /(Edg|Firefox|Chrome|Safari|curl|node)[/ ]([\d.]+)/
      .exec(userAgent)?.[1]
      ?.replace('Edg', 'Edge') ?? '';
  // The most specific first: an Android or iOS user agent also names Linux or Mac OS X.
  const system =
    ['Android', 'iPhone', 'iPad', 'Windows', 'Mac OS X', 'Linux'].find((name) =>
      userAgent.includes(name),
    ) ?? '';
  const short = [browser, system && `on ${system.replace('Mac OS X', 'macOS')}`]
    .filter(Boolean)
    .join(' ');
  return short || userAgent.slice(0, 60);
}
