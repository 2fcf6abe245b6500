/** `txmesh credentials secret | service NAME | client NAME | authorization client NAME`: keys printed for an operator. */
import { CallerRole, authorizationHeader, deriveClientKey, deriveServiceKey, isValidName, newClusterSecret } from '@txmesh/protocol';
import { UsageError, type FlagReader } from './args.ts';
import { readKeys } from './security-flags.ts';

export function issueCredential(args: string[], f: FlagReader): string {
  const [kind, name] = args;
  if (kind === 'secret') {
    f.done();
    return newClusterSecret();
  }
  if (kind === 'authorization') {
    const [, role, who] = args;
    if (role !== 'client' || !isValidName(who)) throw new UsageError('credentials authorization: say `authorization client NAME --key-file FILE`');
    const key = readKeys(f.string('key-file'), 'key-file')[0]!;
    f.done();
    return authorizationHeader(CallerRole.CLIENT, who, key);
  }
  if ((kind !== 'service' && kind !== 'client') || !isValidName(name)) {
    throw new UsageError('credentials: say `secret`, `service NAME` or `client NAME` (names of letters, digits, . _ -)');
  }
  const secret = readKeys(f.string('secret-file'), 'secret-file')[0]!;
  f.done();
  return kind === 'service' ? deriveServiceKey(secret, name) : deriveClientKey(secret, name);
}
