/** Member-side ServiceExport validation (the `Valid` condition) and helpers the gateway shares. */
export { ExportController, type ExportControllerOptions } from './controller.js';
export { evaluateExports, byAge, refOf, prefixKey, type Verdict } from './evaluate.js';
export { mergeCondition, getCondition, isExportServed, VALID, CONFLICT } from '../api/conditions.js';
