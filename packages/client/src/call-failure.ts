/** Why a call got no usable answer: coded, so callers compare codes, not messages or error names. */
export const CallFailure = {
  /** No complete answer within the call's time bound. */
  TIMEOUT: 'TIMEOUT',
  /** The connection failed or broke. */
  UNREACHABLE: 'UNREACHABLE',
  /** The answer was larger than maxAnswerBytes; it was cut off and not read. */
  ANSWER_TOO_LARGE: 'ANSWER_TOO_LARGE',
  /** The client was closed. */
  CLOSED: 'CLOSED',
} as const;
export type CallFailure = (typeof CallFailure)[keyof typeof CallFailure];
