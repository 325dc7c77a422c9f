// Helpers shared by benchmarks: run a phase in its own process (so peak RSS is its own).
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';

/** Runs `node <script> ...args` and returns the last JSON line it printed on stdout. */
export function runPhase(script, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.on('error', reject);
    child.on('exit', (code) => {
      const last = out.trim().split('\n').pop();
      if (code !== 0 || !last) return reject(new Error(`${script} ${args.join(' ')} exited with ${code}`));
      resolve(JSON.parse(last));
    });
  });
}

/** Peak resident set size of this process so far, MB. */
export function peakRssMb() {
  return Math.round((process.resourceUsage().maxRSS / 1024) * 10) / 10;
}

export function print(line) {
  process.stdout.write(JSON.stringify(line) + '\n');
}

/** A free TCP port on 127.0.0.1 (for the peers a benchmark starts). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}
