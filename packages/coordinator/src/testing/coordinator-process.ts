/**
 * Runs one coordinator as its own process, for crash tests: options as JSON in argv[2], prints its URL
 * on stdout once listening. SIGTERM closes it cleanly; crash points kill it with SIGKILL.
 */
import { startCoordinator, type CoordinatorOptions } from '../app.ts';

const options = JSON.parse(process.argv[2] ?? '{}') as CoordinatorOptions;
const { url, close } = await startCoordinator(options);
process.stdout.write(`${url}\n`);
const stop = (): void => {
  void close().then(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
