export * from './states.ts';
export * from './errors.ts';
export * from './wire.ts';
export * from './tx-id.ts';
export * from './validate.ts';
export * from './http-errors.ts';
export * from './reasons.ts';
export * from './isolation.ts';
