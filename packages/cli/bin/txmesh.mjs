#!/usr/bin/env node
// Entry point: registers the TypeScript loader so the sources run as they are, then hands over to main.
import { register } from 'tsx/esm/api';
register();
const { main } = await import('../src/main.ts');
process.exitCode = await main(process.argv.slice(2));
