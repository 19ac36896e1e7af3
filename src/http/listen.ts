import { createServer, type Server } from 'node:net';

/** Where a listener goes, and the settings that say so (named in a refusal). */
export interface ListenTarget {
  /** What listens, as the message names it: `port` or `metrics port`. */
  readonly label: string;
  readonly port: number;
  readonly host: string;
  /** The variables that set them: `PORT` and `HOST`, or `METRICS_PORT` and `METRICS_HOST`. */
  readonly portVariable: string;
  readonly hostVariable: string;
}

/** A listener that could not start; its message says why and what to change, in one line. */
export class ListenError extends Error {}

/** One line for the operator: what failed, the system's code, and which setting to change. */
function refusal(error: NodeJS.ErrnoException, target: ListenTarget): string {
  const { label, port, host, portVariable, hostVariable } = target;
  const code = error.code ?? 'unknown error';
  switch (error.code) {
    case 'EADDRINUSE':
      return `${label} ${port} on ${host} is already in use (${code}); set ${portVariable} to a free port`;
    case 'EADDRNOTAVAIL':
      return `cannot listen on ${host}: not an address of this machine (${code}); set ${hostVariable} to one of its addresses`;
    default:
      return `cannot listen on ${label} ${port} on ${host} (${code}); check ${portVariable} and ${hostVariable}`;
  }
}

/**
 * Listens on the target's port and host; rejects with a {@link ListenError} (never an unhandled
 * `'error'` event) when that fails.
 */
export function listenOn(server: Server, target: ListenTarget): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      reject(new ListenError(refusal(error, target)));
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(target.port, target.host);
  });
}

/**
 * Checks that every target can be listened on, all at once (so two targets on one port are
 * caught too), and lets them go: run before anything is created, a port in use costs nothing
 * (a first start's keys are shown on the next start). Rejects with the first {@link ListenError}.
 */
export async function checkListenable(targets: readonly ListenTarget[]): Promise<void> {
  const servers = targets.map(() => createServer());
  const results = await Promise.allSettled(
    targets.map((target, i) => listenOn(servers[i]!, target)),
  );
  await Promise.all(
    servers
      .filter((server) => server.listening)
      .map((server) => new Promise<void>((resolve) => server.close(() => resolve()))),
  );
  const failed = results.find((result) => result.status === 'rejected');
  if (failed) throw failed.reason;
}
