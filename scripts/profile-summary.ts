/**
 * Sums a V8 CPU profile (`node --cpu-prof`) by where the time was spent: self time per package
 * (`node_modules/<name>`), per file of ours (`src/...`), Node's internals, garbage collection
 * and idle; then the functions with the most self time.
 *
 *   npx tsx scripts/profile-summary.ts /tmp/prof/CPU.*.cpuprofile [--top 40] [--last 8]
 *
 * Several profiles are summed. Percentages are of the busy time (idle left out). `--last N`
 * keeps the last N seconds of each profile only: a bench's load, not the server's start and
 * seeding before it.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Where a frame's code lives: a package, a file of ours, Node, or a V8 pseudo-frame. */
function placeOf(url: string, functionName: string): string {
  if (url === '') {
    if (functionName === '(idle)' || functionName === '(program)') return functionName;
    if (functionName === '(garbage collector)') return '(gc)';
    return '(native)';
  }
  const modules = url.lastIndexOf('node_modules/');
  if (modules >= 0) {
    const rest = url.slice(modules + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (url.startsWith('node:')) return url;
  const src = url.indexOf('/src/');
  if (src >= 0) return url.slice(src + 1);
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return url.slice(dist + 1);
  return url;
}

function main() {
  const args = process.argv.slice(2);
  const topAt = args.indexOf('--top');
  const top = topAt >= 0 ? Number(args[topAt + 1]) : 30;
  const lastAt = args.indexOf('--last');
  const lastUs = lastAt >= 0 ? Number(args[lastAt + 1]) * 1e6 : Infinity;
  const files = args.filter(
    (a, i) => !a.startsWith('--') && i !== topAt + 1 && (lastAt < 0 || i !== lastAt + 1),
  );
  const byPlace = new Map<string, number>();
  const byFunction = new Map<string, number>();
  for (const file of files) {
    const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
    const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
    const total = profile.timeDeltas.reduce((n, d) => n + d, 0);
    let at = 0;
    profile.samples.forEach((id, i) => {
      const node = nodes.get(id)!;
      const us = profile.timeDeltas[i] ?? 0;
      at += us;
      if (total - at > lastUs) return;
      const { functionName, url, lineNumber } = node.callFrame;
      const place = placeOf(url, functionName);
      byPlace.set(place, (byPlace.get(place) ?? 0) + us);
      const name = `${functionName || '(anonymous)'} ${place}:${lineNumber + 1}`;
      byFunction.set(name, (byFunction.get(name) ?? 0) + us);
    });
  }
  const busy = [...byPlace].reduce((n, [p, us]) => (p === '(idle)' ? n : n + us), 0);
  const print = (title: string, map: Map<string, number>) => {
    process.stdout.write(`\n${title} (busy ${(busy / 1e6).toFixed(2)} s)\n`);
    for (const [name, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      if (name.startsWith('(idle)')) continue;
      process.stdout.write(
        `${((us / busy) * 100).toFixed(1).padStart(5)}%  ${(us / 1e3).toFixed(0).padStart(6)} ms  ${name}\n`,
      );
    }
  };
  print('self time by place', byPlace);
  print('self time by function', byFunction);
}

main();
