#!/usr/bin/env node
// The txmesh command: compiled JavaScript only (run `npm run build` in a clone first).
import { main } from '../dist/main.js';
process.exitCode = await main(process.argv.slice(2));
