import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CallerRole, authenticateWithSecrets, authorizationHeader, deriveClientKey, deriveServiceKey, newClusterSecret, verifyWithSecrets } from './credentials.ts';

describe('verifyWithSecrets', () => {
  const secret = newClusterSecret();
  const secrets = [secret];
  const client = authorizationHeader(CallerRole.CLIENT, 'shop', deriveClientKey(secret, 'shop'));

  it('answers a header it verified before the same way, and still refuses every other proof for that name', () => {
    assert.deepEqual(verifyWithSecrets(client, secrets), { role: 'client', name: 'shop' });
    assert.deepEqual(verifyWithSecrets(client, secrets), { role: 'client', name: 'shop' });
    const forged = `${client.slice(0, -1)}${client.endsWith('0') ? '1' : '0'}`;
    assert.equal(verifyWithSecrets(forged, secrets), undefined);
    assert.throws(() => authenticateWithSecrets(forged, secrets), { code: 'TXM_UNAUTHENTICATED', details: 'the credential does not verify' });
    assert.throws(() => authenticateWithSecrets('Bearer nonsense', secrets), { code: 'TXM_UNAUTHENTICATED', details: 'no txmesh credential in the Authorization header' });
    // A service's proof is bound to its direction: the client's header is no service's.
    const service = authorizationHeader(CallerRole.SERVICE, 'shop', deriveServiceKey(secret, 'shop'));
    assert.deepEqual(verifyWithSecrets(service, secrets), { role: 'service', name: 'shop' });
  });

  it('does not carry a header verified under one list of secrets over to another', () => {
    assert.deepEqual(verifyWithSecrets(client, secrets), { role: 'client', name: 'shop' });
    assert.equal(verifyWithSecrets(client, [newClusterSecret()]), undefined);
    // Rotation: a list that still holds the old secret verifies it.
    assert.deepEqual(verifyWithSecrets(client, [newClusterSecret(), secret]), { role: 'client', name: 'shop' });
  });
});
