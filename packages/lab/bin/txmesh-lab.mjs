#!/usr/bin/env node
// The lab's commands (demo, bench, chaos, service, null-echo), also reachable as `txmesh <command>`.
import { labMain } from '../dist/main.js';
process.exitCode = await labMain(process.argv.slice(2));
