/**
 * Child process for crash.test.ts: opens the inventory database given in argv and runs one batch.
 * With TXMESH_CRASH_AT set, it dies by SIGKILL at that step; otherwise it prints the results.
 */
import { PROTOCOL_VERSION, type BranchItem } from '@txmesh/protocol';
import { openParticipantDatabase } from './database.ts';
import { createParticipant } from './participant.ts';
import { SERVICE, inventoryOperations, newCalls } from './test-support.ts';

const [file, itemsJson] = process.argv.slice(2);
const db = openParticipantDatabase(file!);
const participant = createParticipant({ service: SERVICE, db, operations: inventoryOperations(db, newCalls()) });
const response = await participant.handleBatch({ protocolVersion: PROTOCOL_VERSION, items: JSON.parse(itemsJson!) as BranchItem[] });
process.stdout.write(JSON.stringify(response.results));
participant.close();
db.close();
