/** Endpoint leases: see names.ts for the scheme, controller.ts for expiry. */
export * from './names.js';
export { LeaseController, type LeaseControllerOptions } from './controller.js';
