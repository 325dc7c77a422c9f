/**
 * Test helper: a real redis-server as a child process of the test (no daemonize), on
 * 127.0.0.1 and a port chosen at run time. `stop()` ends it; `kill()` SIGKILLs it (a crash);
 * `pause()` stops it for a while; `start()` starts it again on the same port and directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '@tributary/conformance';

export interface RedisServer {
  readonly port: number;
  readonly dir: string;
  start(): Promise<void>;
  /** SIGKILL: no shutdown, no final save. */
  kill(): Promise<void>;
  /** SIGSTOP, then SIGCONT after `ms`: the server reads nothing meanwhile, so clients' socket buffers fill. */
  pause(ms: number): Promise<void>;
  /** SIGTERM, then removes the data directory. */
  stop(): Promise<void>;
}


/** True once the server answers PING (NOAUTH, from a server with a password, is an answer too). */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    let data = '';
    socket.setTimeout(500, () => socket.destroy());
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      data += String(chunk);
      if (data.includes('\r\n')) {
        socket.destroy();
        resolve(data.startsWith('+PONG') || data.startsWith('-NOAUTH'));
      }
    });
    socket.on('error', () => resolve(false));
    socket.on('close', () => resolve(false));
  });
}

/**
 * `persistent`: `--appendonly yes --appendfsync always`, so acknowledged writes survive a SIGKILL.
 * `args`: more redis-server arguments (e.g. `--requirepass`).
 */
export async function startRedisServer(options: { persistent?: boolean; args?: string[] } = {}): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'tributary-redis-'));
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', dir, '--daemonize', 'no'];
  args.push(...(options.persistent ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']), ...(options.args ?? []));
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const stopChild = async (signal: NodeJS.Signals): Promise<void> => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    c.kill(signal);
    await exited;
  };
  const server: RedisServer = {
    port,
    dir,
    async start() {
      let stderr = '';
      const c = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'pipe'] });
      c.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
      child = c;
      exited = new Promise((resolve) => c.once('exit', () => resolve()));
      for (let i = 0; i < 200; i++) {
        if (c.exitCode !== null) throw new Error(`redis-server exited with ${c.exitCode}: ${stderr}`);
        if (await ping(port)) return;
        await new Promise((r) => setTimeout(r, 25));
      }
      await stopChild('SIGKILL');
      throw new Error(`redis-server on port ${port} did not answer PING: ${stderr}`);
    },
    kill: () => stopChild('SIGKILL'),
    async pause(ms) {
      child?.kill('SIGSTOP');
      await new Promise((r) => setTimeout(r, ms));
      child?.kill('SIGCONT');
    },
    async stop() {
      await stopChild('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await server.start();
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return server;
}
