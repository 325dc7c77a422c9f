/**
 * Crash points at the I/O steps of a process, for the destination crash cases' child
 * process (see destination-crash-runner.ts). Once armed, every call that changes a file or
 * sends bytes on a socket is one step: Node's `fs` functions (promise, callback and sync
 * forms, and `FileHandle` methods) that create, write, sync, rename, copy, link or remove
 * files and directories, and `net.Socket#write` (Redis, HTTP to S3 or an API, a database
 * wire protocol). The process kills itself with SIGKILL in place of step `killAt` — steps
 * before it were issued (asynchronous ones possibly still in flight, as in a real crash),
 * that one and every later one never happen.
 *
 * Work done in native code (DuckDB writing Parquet, a database client written in C) is not
 * seen; the steps by which a destination publishes that work through Node are. Reading is
 * not a step: it changes nothing a crash could leave half done.
 */
import fs from 'node:fs';
import { writeSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import net from 'node:net';

/** `fs` functions that change files or directories (each form: `x`, `xSync`, and `fs.promises.x`). */
const CHANGING = ['open', 'writeFile', 'appendFile', 'write', 'writev', 'rename', 'copyFile', 'cp', 'unlink', 'rm', 'rmdir', 'mkdir', 'mkdtemp', 'link', 'symlink', 'truncate', 'ftruncate', 'fsync', 'fdatasync', 'close', 'utimes', 'futimes'] as const;
/** `FileHandle` methods that change the file. */
const HANDLE_CHANGING = ['write', 'writev', 'writeFile', 'appendFile', 'truncate', 'sync', 'datasync', 'close', 'utimes'] as const;

export interface IoCrashPoints {
  /** Starts counting steps; `killAt` (1-based) is the step replaced by SIGKILL, none when undefined. */
  arm(killAt: number | undefined): void;
  /** Stops counting (and killing). */
  disarm(): void;
  /** Steps counted since `arm`. */
  readonly steps: number;
}

type Fn = (...args: unknown[]) => unknown;

/** Whether `open`'s flags argument opens for reading only (its default, `'r'`). */
function readOnly(flags: unknown): boolean {
  if (flags === undefined || flags === null || typeof flags === 'function') return true;
  if (typeof flags === 'number') return (flags & (fs.constants.O_WRONLY | fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_APPEND)) === 0;
  return flags === 'r' || flags === 'rs' || flags === 'sr';
}

/**
 * Wraps the I/O functions of this process (once; call before the destination is imported
 * or used). Until `arm` is called, nothing is counted. `report` is written synchronously to
 * stdout just before the kill, so that the parent learns which step it was.
 */
export async function installIoCrashPoints(): Promise<IoCrashPoints> {
  let armed = false;
  let killAt: number | undefined;
  let steps = 0;
  const step = (): void => {
    if (!armed) return;
    steps++;
    if (killAt !== undefined && steps >= killAt) {
      armed = false;
      // The original writeSync: the report itself must not count as a step.
      originalWriteSync(1, `killed-at-step ${steps}\n`);
      process.kill(process.pid, 'SIGKILL');
    }
  };
  const wrap = (target: Record<string, unknown>, name: string): void => {
    const original = target[name];
    if (typeof original !== 'function') return;
    const fn = original as Fn;
    const opens = name === 'open' || name === 'openSync';
    target[name] = function (this: unknown, ...args: unknown[]): unknown {
      // Opening for reading only changes nothing.
      if (!opens || !readOnly(args[1])) step();
      return fn.apply(this, args);
    };
  };
  // A FileHandle's prototype, from a handle opened before anything is wrapped.
  const handle = await fs.promises.open(process.execPath, 'r');
  const handleProto = Object.getPrototypeOf(handle) as Record<string, unknown>;
  await handle.close();
  const originalWriteSync = writeSync;
  const fsModule = fs as unknown as Record<string, unknown>;
  const promises = fs.promises as unknown as Record<string, unknown>;
  for (const name of CHANGING) {
    wrap(fsModule, name);
    wrap(fsModule, `${name}Sync`);
    wrap(promises, name);
  }
  for (const name of HANDLE_CHANGING) wrap(handleProto, name);
  wrap(net.Socket.prototype as unknown as Record<string, unknown>, 'write');
  // ES module imports of node:fs and node:fs/promises see the wrapped functions too.
  syncBuiltinESMExports();
  return {
    arm(at) {
      steps = 0;
      killAt = at;
      armed = true;
    },
    disarm() {
      armed = false;
    },
    get steps() {
      return steps;
    },
  };
}
