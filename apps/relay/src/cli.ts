import { runCli } from './run-cli.ts';

// The `scopesync-relay` command. SIGTERM/SIGINT stop the relay gracefully: stop accepting,
// close WebSockets with 1001, commit pending writes, then exit 0.
let stopping = false;
const code = await runCli(process.argv.slice(2), {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  env: process.env,
  onStarted: (relay) => {
    const stop = (): void => {
      if (stopping) {
        // A second signal while stopping: the operator insists.
        process.exit(1);
      }
      stopping = true;
      relay.close().catch((error: unknown) => {
        process.stderr.write(`scopesync-relay: error while stopping: ${String(error)}\n`);
        process.exitCode = 1;
      });
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  },
});
process.exitCode = code;
