/**
 * HTTP face of a participant, mounted on the service's own fastify app. The routes live in their own
 * encapsulated scope so their error handler (TxmeshError bodies) does not replace the service's.
 */
import type { FastifyInstance } from 'fastify';
import {
  Paths,
  toTxmeshError,
  validateBatchRequest,
  type BranchBatchRequest,
  type BranchBatchResponse,
  type PreparedListResponse,
} from '@txmesh/protocol';

export interface BatchHandler {
  handleBatch(req: BranchBatchRequest): Promise<BranchBatchResponse>;
  preparedList(): PreparedListResponse;
}

export function mountParticipantRoutes(app: FastifyInstance, participant: BatchHandler): void {
  app.register(async (scope) => {
    scope.setErrorHandler((err, _request, reply) => {
      const error = toTxmeshError(err);
      if (error.status >= 500) scope.log.error({ err }, 'participant route failed');
      return reply.status(error.status).send(error.toBody());
    });
    scope.post(Paths.PARTICIPANT_BATCH, async (request) => participant.handleBatch(validateBatchRequest(request.body)));
    scope.get(Paths.PARTICIPANT_PREPARED, async () => participant.preparedList());
  });
}
